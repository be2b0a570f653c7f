#!/usr/bin/python3
"""drive_listings URL ADDRESS TTL - add a block in the Listings page at URL with a
real headless Chromium, and print a JSON line {"status": ..., "problems": [...]}.

tests/integration/dashboard/test_dashboard_kernel.py runs it with `ip netns
exec` inside the appliance's network namespace, where the dashboard listens
on that namespace's loopback."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from browser import Browser  # noqa: E402


def main():
    url, address, ttl = sys.argv[1:4]
    with Browser() as b:
        b.open(url + "listings.html")
        b.wait_js("return document.getElementById('who').textContent.length > 0", 10, what="session loaded")
        b.driver.find_element("id", "address").send_keys(address)
        b.driver.find_element("id", "ttl").send_keys(ttl)
        b.driver.find_element("id", "add-button").click()
        b.wait_js("return /ok|error/.test(document.getElementById('status').className)", 10, what="add answered")
        b.wait_js("return document.querySelector('#block-rows tr[data-address^=\"%s\"]') !== null" % address, 10,
                  what="the block in the page's list")
        shot = b.screenshot("listings-netns")
        print(json.dumps({"status": b.text("status"), "problems": b.problems(), "screenshot": shot}))


if __name__ == "__main__":
    main()
