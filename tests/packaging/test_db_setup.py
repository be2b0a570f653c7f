"""`mxtierctl db setup` against a throw-away PostgreSQL of the harness: the
login role (granted mxtier_writer only), the database, the migrations, the
config's database key set in place, and a second run that changes nothing.
The admin connection is the cluster's socket (--admin); run as root the
work is done by a child that became the postgres account, as on an
appliance."""
import glob
import os
import subprocess

import pytest

import pgcluster

pytestmark = pytest.mark.skipif(bool(pgcluster.available()), reason=pgcluster.available() or "ok")

ROLE = "mxtier_setup_app"
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the newest migration's number: db setup applies them all
LAST_MIGRATION = max(int(os.path.basename(p)[:4]) for p in glob.glob(os.path.join(TOP, "db", "migrations", "[0-9]*_*.sql")))


@pytest.fixture
def cluster():
    c = pgcluster.Cluster().create().start()
    yield c
    c.destroy()


def run(mxtierctl, conf, *args):
    return subprocess.run([mxtierctl, "-c", conf] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def test_db_setup_creates_role_database_schema_and_config(cluster, mxtierctl, tmp_path):
    conf = tmp_path / "mxtier.conf"
    conf.write_text("# the tiers\nprimary_ips = 127.0.0.10\n\n# the database: mxtierctl db setup sets it\n"
                    "#database =\nbackend = 127.0.0.1:10025 # the MTA\n")
    os.chmod(conf, 0o640)
    admin = cluster.conninfo("postgres")
    r = run(mxtierctl, str(conf), "db", "setup", "--admin", admin, "--role", ROLE, "--dbname", "mxtier_setup")
    assert r.returncode == 0, r.stderr
    assert "created role %s" % ROLE in r.stdout
    assert "created database mxtier_setup" in r.stdout
    assert "applied 0001_initial" in r.stdout
    assert "granted mxtier_writer to %s" % ROLE in r.stdout

    # The role logs in, is no superuser, owns nothing, and is a writer.
    role = cluster.rows("postgres", "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                                    "WHERE rolname = '%s'" % ROLE)
    assert role == [{"rolcanlogin": True, "rolsuper": False, "rolcreatedb": False, "rolcreaterole": False}]
    assert cluster.value("mxtier_setup", "SELECT pg_has_role('%s', 'mxtier_writer', 'member')" % ROLE) == "t"
    assert cluster.value("mxtier_setup", "SELECT pg_get_userbyid(datdba) FROM pg_database "
                                         "WHERE datname = 'mxtier_setup'") == "postgres"
    assert cluster.value("mxtier_setup", "SELECT max(version) FROM mxtier_schema_migrations") == str(LAST_MIGRATION)

    # The config: the commented default replaced in place, every other line kept, mode kept.
    expected = "host=%s port=%d dbname=mxtier_setup user=%s" % (cluster.host, cluster.port, ROLE)
    assert conf.read_text() == ("# the tiers\nprimary_ips = 127.0.0.10\n\n# the database: mxtierctl db setup sets it\n"
                                "database = %s\nbackend = 127.0.0.1:10025 # the MTA\n" % expected)
    assert os.stat(conf).st_mode & 0o777 == 0o640
    assert not [p for p in os.listdir(tmp_path) if ".mxtierctl-" in p]

    # What the operator does next works as that role: a listing row through the configured database.
    r = run(mxtierctl, str(conf), "block", "add", "192.0.2.77", "1h")
    assert r.returncode == 0, r.stderr
    assert cluster.value("mxtier_setup", "SELECT network FROM listings WHERE kind = 'block'") == "192.0.2.77/32"

    # Again (what an upgrade's postinst runs): nothing created, nothing applied, the file as it was.
    before = conf.read_text()
    r = run(mxtierctl, str(conf), "db", "setup", "--admin", admin, "--role", ROLE, "--dbname", "mxtier_setup")
    assert r.returncode == 0, r.stderr
    assert "created" not in r.stdout and "granted" not in r.stdout
    assert "(0 applied)" in r.stdout
    assert "already set" in r.stdout
    assert conf.read_text() == before


def test_db_setup_unreachable_changes_nothing(cluster, mxtierctl, tmp_path):
    conf = tmp_path / "mxtier.conf"
    text = "primary_ips = 127.0.0.10\n"
    conf.write_text(text)
    cluster.stop()
    r = run(mxtierctl, str(conf), "db", "setup", "--admin", cluster.conninfo("postgres"), "--role", ROLE)
    assert r.returncode == 1
    assert "nothing in %s was changed" % conf in r.stderr
    assert conf.read_text() == text
