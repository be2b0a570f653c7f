/*
 * mxtierctl - the operator's tool: the command line and the command table.
 * Each command lives with its concern:
 *   check | config | rules       here (the configuration file, the ruleset)
 *   status, block, allow         ctl_control.c (the running daemon) and,
 *                                with a database, ctl_db.c
 *   db migrate, why, rep         ctl_db.c
 *   tier list | set              ctl_tier.c (editing: ctl_config_edit.c)
 *   dns-check DOMAIN             ctl_dns_check.c (resolver: ctl_resolve.c)
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
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
	    "  allow del ADDRESS | allow list\n"
	    "  db migrate                   create or upgrade the database schema\n"
	    "  db setup [--admin CONNINFO] [--role NAME] [--dbname NAME]\n"
	    "                               the local PostgreSQL: role, database, schema, config\n"
	    "  why ADDRESS                  recent verdicts, reputation and listings of a client\n"
	    "  rep ADDRESS                  reputation rows of a client, its prefix and domains\n"
	    "  tier list                    this machine's addresses: tier role, listening, reverse DNS\n"
	    "  tier set ADDRESS ROLE        give an address the role primary, secondary, bait or none:\n"
	    "                               edits the file, checks it, reloads mxtierd (or changes nothing)\n"
	    "  dns-check DOMAIN             do the domain's MX records and the tier addresses' PTRs\n"
	    "                               fit this appliance? (exit 1 when a mistake is found)\n");
	return 2;
}

static int
cmd_check(const struct config *c, int argc, char **argv)
{
	printf("%s: configuration ok\n", c->path);
	return 0;
}

static int
cmd_config(const struct config *c, int argc, char **argv)
{
	config_print(c, stdout);
	return 0;
}

static int
cmd_rules(const struct config *c, int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--routing") == 0)
		ruleset_print_routing(stdout);
	else
		ruleset_print(c, stdout);
	return 0;
}

/*
 * cmd_listing - block/allow. With a database the listing goes there, for
 * every appliance (they follow it by NOTIFY); the local daemon is told
 * directly as well.
 */
static int
cmd_listing(const struct config *c, int argc, char **argv)
{
	int rc;

	if (argc < 2)
		return usage();
	if (c->database[0] == '\0')
		return ctl_cmd_control(c, argc, argv);
	rc = ctl_listing_change(c, argc, argv);
	if (rc == 0 && c->control_socket[0] != '\0' && strcmp(argv[1], "list") != 0)
		(void)ctl_cmd_control(c, argc, argv);
	return rc;
}

/*
 * draft: the command works on a file without tier addresses yet (the
 * packaged one), since it is how the first is given or how the appliance
 * is prepared; the others need what the daemon needs.
 */
static const struct ctl_command {
	const char	*name;
	int		(*run)(const struct config *c, int argc, char **argv);
	bool		 draft;
} ctl_commands[] = {
	{ "check",	cmd_check,		false },
	{ "config",	cmd_config,		false },
	{ "rules",	cmd_rules,		false },
	{ "status",	ctl_cmd_control,	false },
	{ "block",	cmd_listing,		false },
	{ "allow",	cmd_listing,		false },
	{ "db",		ctl_cmd_db,		true },
	{ "why",	ctl_cmd_why,		false },
	{ "rep",	ctl_cmd_why,		false },
	{ "tier",	ctl_cmd_tier,		true },
	{ "dns-check",	ctl_cmd_dns_check,	true },
};

int
main(int argc, char **argv)
{
	const char *path = MXTIER_CONFIG_PATH;
	const struct ctl_command *cmd = NULL;
	struct config *c;
	char err[1024];
	int ch, rc;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		if (ch == 'c')
			path = optarg;
		else
			return usage();
	}
	if (optind >= argc)
		return usage();
	for (size_t i = 0; i < sizeof(ctl_commands) / sizeof(ctl_commands[0]); i++)
		if (strcmp(argv[optind], ctl_commands[i].name) == 0)
			cmd = &ctl_commands[i];
	if (cmd == NULL) {
		fprintf(stderr, "mxtierctl: %s: unknown command\n", argv[optind]);
		return usage();
	}
	c = cmd->draft ? config_load_draft(path, err, sizeof(err)) : config_load(path, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "mxtierctl: %s\n", err);
		return 1;
	}
	rc = cmd->run(c, argc - optind, argv + optind);
	config_unref(c);
	return rc;
}
