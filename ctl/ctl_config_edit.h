#ifndef MXTIER_CTL_CONFIG_EDIT_H
#define MXTIER_CTL_CONFIG_EDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "netaddr.h"

/*
 * ctl_config_set_tier - the config text with addr in the tier list of role
 * (TIER_PRIMARY..TIER_BAIT) and in no other; role -1 removes it from all.
 * Every other byte stays: comments, order, spacing, other keys. A tier
 * list line that changes keeps its key, its spacing and its comment; a
 * missing key line is appended. Returns a malloc'd text; *changed says
 * whether it differs from text. *was is the role it had (-1: none).
 */
char	*ctl_config_set_tier(const char *text, const struct netaddr *addr, int role, bool *changed, int *was);

/* ctl_config_read - the file's bytes (malloc'd, NUL-terminated); NULL with err set. */
char	*ctl_config_read(const char *path, char *err, size_t errlen);

/*
 * ctl_config_replace - put text in place of the file at path (a symlink is
 * followed) atomically: a temp file in the same directory with the old
 * file's mode and owner, synced, then renamed over it. -1 with err set,
 * the old file untouched.
 */
int	 ctl_config_replace(const char *path, const char *text, char *err, size_t errlen);

#endif
