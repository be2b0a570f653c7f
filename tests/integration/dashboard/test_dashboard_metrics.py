"""Every metric the Grafana boards query is one the real mxtierd's /metrics serves."""

import json
import os
import re

from dashlib import TOP, http

GRAFANA = os.path.join(TOP, "dashboards", "grafana")
NAME = re.compile(r"\b(mxtier_[a-z0-9_]+)\b")
SELECTOR = re.compile(r'__name__=~\\?"([^"\\]+)\\?"')


def prometheus_exprs():
    out = []
    for name in sorted(os.listdir(GRAFANA)):
        if name.endswith(".json"):
            with open(os.path.join(GRAFANA, name)) as f:
                for panel in json.load(f)["panels"]:
                    out += [(name, panel["title"], t["expr"]) for t in panel.get("targets", []) if "expr" in t]
    return out


def test_grafana_metric_names_are_served(start_site):
    site = start_site()
    site.wait_logged([site.relay()])
    status, _, text = http(site.url + "metrics")
    assert status == 200
    served = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            served.add(re.split(r"[{ ]", line, 1)[0])
    exprs = prometheus_exprs()
    assert len(exprs) >= 10
    for board, title, expr in exprs:
        for m in NAME.findall(SELECTOR.sub("", expr)):
            assert m in served, "%s / %s: %s is not in /metrics" % (board, title, m)
        for rx in SELECTOR.findall(expr):
            assert any(re.fullmatch(rx, s) for s in served), "%s / %s: nothing matches %s" % (board, title, rx)
