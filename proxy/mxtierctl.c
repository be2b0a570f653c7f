/*
 * mxtierctl - the operator's tool. This version checks and prints the
 * configuration; the commands that talk to the running daemon, the kernel
 * sets and the database are added with those parts.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int
usage(void)
{
	fprintf(stderr, "usage: mxtierctl -c FILE COMMAND\n"
	    "commands:\n"
	    "  check    check the configuration file\n"
	    "  config   print the effective settings\n");
	return 2;
}

int
main(int argc, char **argv)
{
	const char *path = "/etc/mxtier/mxtier.conf";
	struct config *c;
	char err[1024];
	int ch;

	while ((ch = getopt(argc, argv, "c:h")) != -1) {
		if (ch == 'c')
			path = optarg;
		else
			return usage();
	}
	if (optind >= argc)
		return usage();
	if (strcmp(argv[optind], "check") != 0 && strcmp(argv[optind], "config") != 0) {
		fprintf(stderr, "mxtierctl: %s: unknown command\n", argv[optind]);
		return usage();
	}
	c = config_load(path, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "mxtierctl: %s\n", err);
		return 1;
	}
	if (strcmp(argv[optind], "config") == 0)
		config_print(c, stdout);
	else
		printf("%s: configuration ok\n", path);
	config_unref(c);
	return 0;
}
