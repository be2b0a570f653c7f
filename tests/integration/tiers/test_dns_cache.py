"""DNS answers behind the verdicts (docs/engine.md "Behaviour verdict keys"):
definite answers are cached for their record TTL clamped into
dns_cache_min_ttl..dns_cache_max_ttl; a timeout is *unknown*, never cached
as clean (and not cached at all); a DNSBL reject also blocks the client."""

import time

from tierlib import BANNER, DEFER
from tier_dns import dnsbl_name, reverse_name


def sleep_until(t):
    if t > time.monotonic():
        time.sleep(t - time.monotonic())


def rename(dns, ip, name, ttl):
    dns.remove(reverse_name(ip))
    dns.host(ip, name, ttl=ttl)


def test_answer_cached_for_its_ttl(world):
    ip = "127.1.200.5"
    world.dns.host(ip, "mail.sender200.test", ttl=2)
    world.start(dns_cache_min_ttl="0", dns_cache_max_ttl="1h")
    t0 = time.monotonic()
    v = world.visit("primary", ip, action="deliver")
    assert v.log["rdns"] == "mail.sender200.test" and v.reasons == []
    # the PTR now points at an access-line name; within the TTL the cached answer is used
    rename(world.dns, ip, "127-1-200-5.dyn.isp.test", ttl=60)
    v = world.visit("primary", ip, action="deliver")
    assert v.log["rdns"] == "mail.sender200.test"
    assert world.dns.queried(reverse_name(ip), "PTR") == 1
    sleep_until(t0 + 2.4)
    v = world.visit("primary", ip)
    assert v.greeting.raw == (DEFER + "\r\n").encode()
    assert v.log["rdns"] == "127-1-200-5.dyn.isp.test" and v.reasons == ["dynamic-rdns"]
    assert world.dns.queried(reverse_name(ip), "PTR") == 2


def test_ttl_clamped_to_dns_cache_max_ttl(world):
    ip = "127.1.201.5"
    world.dns.host(ip, "mail.sender201.test", ttl=3600)
    world.start(dns_cache_min_ttl="0", dns_cache_max_ttl="1s")
    t0 = time.monotonic()
    assert world.visit("primary", ip, action="deliver").reasons == []
    rename(world.dns, ip, "pool-9.isp201.test", ttl=3600)
    sleep_until(t0 + 1.4)
    v = world.visit("primary", ip)
    assert v.log["rdns"] == "pool-9.isp201.test" and v.reasons == ["dynamic-rdns"]


def test_ttl_zero_clamped_up_to_dns_cache_min_ttl(world):
    ip = "127.1.202.5"
    world.dns.host(ip, "mail.sender202.test", ttl=0)
    world.start(dns_cache_min_ttl="1m", dns_cache_max_ttl="1h")
    assert world.visit("primary", ip, action="deliver").reasons == []
    rename(world.dns, ip, "pool-9.isp202.test", ttl=0)
    v = world.visit("primary", ip, action="deliver")
    assert v.log["rdns"] == "mail.sender202.test"
    assert world.dns.queried(reverse_name(ip), "PTR") == 1


def test_timeout_is_not_cached(world):
    ip = "127.1.203.5"
    world.dns.silence(reverse_name(ip))
    world.start()
    v = world.visit("primary", ip)
    assert v.greeting.raw == (DEFER + "\r\n").encode() and v.reasons == ["dns-unknown"]
    # the name server is back: the next connection asks again and gets the answer
    world.dns.silent.clear()
    world.dns.host(ip, "mail.sender203.test")
    v = world.visit("secondary", ip, action="deliver")
    assert v.greeting.last == BANNER and v.log["rdns"] == "mail.sender203.test"
    assert v.reasons == []


def test_dnsbl_reject_blocks_the_client(world):
    ip = "127.1.204.5"
    world.dns.host(ip, "mail.sender204.test").listed("bl.test", ip)
    world.start(dnsbl_sites="bl.test*3", dns_cache_size=0)
    v = world.visit("primary", ip)
    assert v.greeting.code == 554 and v.reasons == ["dnsbl"]
    # delisted (and nothing cached): still refused, the client is blocked
    world.dns.remove(dnsbl_name(ip, "bl.test"))
    for tier in ("primary", "secondary"):
        v = world.visit(tier, ip)
        assert v.greeting.last.startswith("554 5.7.1 "), v.greeting
        assert v.log["verdict"] == "reject" and "dnsbl" in v.reasons
