/*
 * kernel_engine.c - the SMTP engine's half of the kernel sets: history's
 * blocks and passes become bounded listing messages to the privileged
 * side (kernel_parent.c), which alone writes nftables.
 */
#include "kernel.h"

#include <string.h>

#include "history.h"
#include "priv.h"

static bool kernel_forwarding;

/* kernel_forward - history's listing hook: one bounded message to the privileged side. */
static void
kernel_forward(const struct netaddr *addr, unsigned prefix_len, int64_t ttl_ms, bool block)
{
	struct priv_kernel_listing m;

	memset(&m, 0, sizeof(m));
	m.addr = *addr;
	m.prefix_len = prefix_len;
	m.block = block;
	m.ttl_ms = ttl_ms;
	priv_to_privileged(PRIV_MSG_KERNEL_LISTING, &m, sizeof(m));
}

int
kernel_init(const struct config *c)
{
	kernel_forwarding = c->kernel_sets != 0;
	history_set_listing_hook(kernel_forwarding ? kernel_forward : NULL);
	return 0;
}

void
kernel_reconfigure(const struct config *c)
{
	kernel_init(c);
}

void
kernel_shutdown(void)
{
	kernel_forwarding = false;
	history_set_listing_hook(NULL);
}
