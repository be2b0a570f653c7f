#ifndef MXTIER_LISTENER_H
#define MXTIER_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/*
 * listeners_apply - make the listening sockets match config c: keep the
 * ones whose address stays (updating their tier role), open new ones,
 * close the rest. Returns -1 if a new address could not be bound (logged,
 * and said in err, which is "" otherwise).
 */
int	listeners_apply(const struct config *c, char *err, size_t errlen);
void	listeners_foreach(void (*fn)(const struct netaddr *addr, uint16_t port, enum tier_role tier,
	    bool transparent, void *arg), void *arg);
void	listeners_close_all(void);

#endif
