/*
 * version.h - the one version string: the dashboard, /metrics'
 * mxtier_build_info and the appliances' heartbeat row say it.
 * tests/packaging/test_conf_keys.py checks it against the first entry of
 * packaging/debian/changelog, so the package and the daemon agree.
 */
#ifndef MXTIER_VERSION_H
#define MXTIER_VERSION_H

#define MXTIER_VERSION	"0.11.0"

#endif
