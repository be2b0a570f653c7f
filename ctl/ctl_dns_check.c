/* placeholder */
#include "ctl.h"
int ctl_cmd_dns_check(const struct config *c, int argc, char **argv) { return 2; }
