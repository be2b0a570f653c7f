"""The dashboard's files as shipped: every file a page loads exists, comes
from the appliance itself (no external URL: the pages work offline), is in
the Debian package (packaging/debian/mxtier.install), and no script of ours
puts API data into the DOM as HTML."""

import fnmatch
import glob
import os
import re

from dashlib import TOP, WEB

INSTALL = os.path.join(TOP, "packaging", "debian", "mxtier.install")
OURS = ("common.js", "live.js", "history.js", "sender.js", "listings.js", "tiers.js")
REF = re.compile(r'(?:src|href)="([^"#?]+)')


def installed(path):
    rel = os.path.relpath(path, TOP)
    with open(INSTALL) as f:
        for line in f:
            parts = line.split()
            # a shell glob: "*" does not cross "/"
            if (len(parts) == 2 and rel.count("/") == parts[0].count("/") and fnmatch.fnmatch(rel, parts[0])
                    and parts[1].startswith("usr/share/mxtier/dashboard")):
                return parts[1]
    return None


def test_every_page_loads_only_files_of_the_appliance_and_they_are_packaged():
    pages = sorted(glob.glob(os.path.join(WEB, "*.html")))
    assert [os.path.basename(p) for p in pages] == ["history.html", "index.html", "listings.html", "sender.html",
                                                   "tiers.html"]
    for page in pages:
        text = open(page).read()
        assert installed(page) == "usr/share/mxtier/dashboard", page
        refs = REF.findall(text)
        assert any(r.endswith("common.js") for r in refs), page
        for ref in refs:
            if ref.endswith(".html"):
                assert os.path.exists(os.path.join(WEB, ref)), (page, ref)
                continue
            assert not re.match(r"^[a-z]+:|^//", ref), "%s loads %s from elsewhere" % (page, ref)
            target = os.path.join(WEB, ref)
            assert os.path.isfile(target), (page, ref)
            assert installed(target) == os.path.dirname("usr/share/mxtier/dashboard/" + ref), (page, ref)


def test_scripts_fetch_nothing_from_elsewhere_and_set_no_html():
    for name in OURS:
        text = open(os.path.join(WEB, name)).read()
        assert not re.search(r"https?://", text), "%s names an external URL" % name
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert bad not in text, "%s uses %s" % (name, bad)
        assert len(text.splitlines()) < 800, name
    for name in glob.glob(os.path.join(WEB, "*.js")):
        assert os.path.basename(name) in OURS, "%s is not checked here" % name


def test_vendored_uplot_is_the_locked_version():
    import json
    lock = json.load(open(os.path.join(WEB, "package-lock.json")))
    pkg = json.load(open(os.path.join(WEB, "package.json")))
    assert pkg["devDependencies"]["uplot"] == lock["packages"]["node_modules/uplot"]["version"] == "1.6.32"
    head = open(os.path.join(WEB, "vendor", "uPlot.iife.min.js")).read(400)
    assert "uPlot" in head, head[:200]
