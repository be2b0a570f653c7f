/*
 * mxtierctl - the operator's tool.
 *   check | config            the configuration file
 *   rules [--routing]         the nftables ruleset (and TPROXY routing) for it
 *   status                    counters of the running daemon
 *   block add|del|list ...    listings in the running daemon (and its kernel sets)
 *   allow add|del|list ...
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "ruleset.h"

static int
usage(void)
{
	fprintf(stderr, "usage: mxtierctl [-c FILE] COMMAND\n"
	    "commands:\n"
	    "  check                        check the configuration file\n"
	    "  config                       print the effective settings\n"
	    "  rules [--routing]            print the nftables ruleset (--routing: TPROXY policy routing)\n"
	    "  status                       counters of the running mxtierd\n"
	    "  block add ADDRESS [TTL]      refuse a client (and drop it in the kernel)\n"
	    "  block del ADDRESS | block list\n"
	    "  allow add ADDRESS [TTL]      fast-track a client at every tier\n"
	    "  allow del ADDRESS | allow list\n");
	return 2;
}

/* control_request - send one request line to the daemon, print its reply; 0 when it said "ok". */
static int
control_request(const struct config *c, int argc, char **argv)
{
	struct sockaddr_un sun;
	char request[512] = "", reply[4096];
	size_t used = 0;
	ssize_t n;
	int fd, rc = 1, first = 1;

	if (c->control_socket[0] == '\0') {
		fprintf(stderr, "mxtierctl: control_socket is not set in %s\n", c->path);
		return 1;
	}
	for (int i = 0; i < argc; i++)
		used += (size_t)snprintf(request + used, sizeof(request) - used, "%s%s", i ? " " : "", argv[i]);
	if (used + 2 >= sizeof(request)) {
		fprintf(stderr, "mxtierctl: request too long\n");
		return 1;
	}
	strcat(request, "\n");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "mxtierctl: cannot reach mxtierd at %s: %s\n", c->control_socket, strerror(errno));
		if (fd != -1)
			close(fd);
		return 1;
	}
	if (write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
		fprintf(stderr, "mxtierctl: write: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	while ((n = read(fd, reply, sizeof(reply) - 1)) > 0) {
		reply[n] = '\0';
		if (first) {
			rc = strncmp(reply, "ok", 2) == 0 ? 0 : 1;
			first = 0;
		}
		fputs(reply, rc == 0 ? stdout : stderr);
	}
	close(fd);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *path = "/etc/mxtier/mxtier.conf";
	const char *cmd;
	struct config *c;
	char err[1024];
	int ch, rc = 0;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		if (ch == 'c')
			path = optarg;
		else
			return usage();
	}
	if (optind >= argc)
		return usage();
	cmd = argv[optind];
	if (strcmp(cmd, "check") && strcmp(cmd, "config") && strcmp(cmd, "rules") && strcmp(cmd, "status") &&
	    strcmp(cmd, "block") && strcmp(cmd, "allow")) {
		fprintf(stderr, "mxtierctl: %s: unknown command\n", cmd);
		return usage();
	}
	c = config_load(path, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "mxtierctl: %s\n", err);
		return 1;
	}
	if (strcmp(cmd, "config") == 0) {
		config_print(c, stdout);
	} else if (strcmp(cmd, "check") == 0) {
		printf("%s: configuration ok\n", path);
	} else if (strcmp(cmd, "rules") == 0) {
		if (optind + 1 < argc && strcmp(argv[optind + 1], "--routing") == 0)
			ruleset_print_routing(stdout);
		else
			ruleset_print(c, stdout);
	} else {
		if ((strcmp(cmd, "block") == 0 || strcmp(cmd, "allow") == 0) && optind + 1 >= argc) {
			config_unref(c);
			return usage();
		}
		rc = control_request(c, argc - optind, argv + optind);
	}
	config_unref(c);
	return rc;
}
