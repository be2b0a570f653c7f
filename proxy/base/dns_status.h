#ifndef MXTIER_DNS_STATUS_H
#define MXTIER_DNS_STATUS_H

/* The outcome of one DNS question: shared by the resolver and the policy that reads its answers. */
enum dns_status {
	DNS_FOUND = 0,
	DNS_NONE,		/* NXDOMAIN or no data: a definite "no" */
	DNS_UNKNOWN		/* timeout, SERVFAIL, refused: not a "no" */
};

#endif
