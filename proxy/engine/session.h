#ifndef MXTIER_SESSION_H
#define MXTIER_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config.h"
#include "data_reader.h"
#include "dns.h"
#include "facts.h"
#include "netaddr.h"
#include "outq.h"
#include "reply_parser.h"
#include "smtp_parse.h"
#include "verdict.h"

struct bufferevent;
struct event;
struct relay;
struct db_lookup;

/* Commands mxtierd knows; the table is in session_cmd.c. */
enum command_id {
	CMD_NONE = -1,
	CMD_EHLO = 0,
	CMD_HELO,
	CMD_MAIL,
	CMD_RCPT,
	CMD_DATA,
	CMD_DATA_END,		/* not a verb: the end-of-data the backend answers */
	CMD_RSET,
	CMD_NOOP,
	CMD_QUIT,
	CMD_HELP,
	CMD_VRFY,
	CMD_STARTTLS,
	CMD_NOT_IMPLEMENTED
};

enum session_state {
	SESSION_RESOLVING = 0,	/* DNS lookups for the greeting verdict; nothing sent yet */
	SESSION_GREETING,	/* banner started, greet wait running */
	SESSION_STARTTLS,	/* 220 to STARTTLS queued, then the handshake: nothing is read as SMTP */
	SESSION_HELO,		/* waiting for EHLO/HELO */
	SESSION_READY,		/* greeted, no mail transaction */
	SESSION_MAIL,		/* MAIL accepted, no recipient yet */
	SESSION_RCPT,		/* at least one RCPT given */
	SESSION_DATA,		/* reading message data */
	SESSION_CLOSING,	/* last reply queued; freed once it is written */
	SESSION_STATE_COUNT
};

/* One DNS lookup of a session: the callback argument, valid as long as the session. */
struct session_dns_slot {
	struct session		*session;
	int			 index;		/* 0 PTR, 1 forward, 2.. DNSBL sites */
	struct dns_request	*request;	/* NULL once answered */
};

#define SESSION_DNS_SLOTS (2 + DNSBL_SITES_MAX)

/* What DNS says about the client (client_dns.c); the DNS checks read these. */
struct session_dns {
	bool			 started, done;
	unsigned		 pending;
	struct session_dns_slot	 slots[SESSION_DNS_SLOTS];
	enum dns_status		 ptr_status;
	char			 ptr_name[256];
	enum dns_status		 forward_status;
	bool			 fcrdns;
	char			 domain[256];	/* registered domain of ptr_name when forward-confirmed */
	int			 dnsbl_score;
	bool			 dnsbl_unknown;
	char			 dnsbl_listed[256];
};

/* Bounds for the client leg. */
#define SESSION_INPUT_HIGH	(64 * 1024)	/* stop reading the socket above this */
#define SESSION_OUTPUT_HIGH	(64 * 1024)	/* stop executing commands while the client does not read */
#define SESSION_CLOSE_LINGER_MS	5000		/* longest wait for a last reply to drain */
#define DNS_GRACE_MS		500		/* beyond dns_timeout before the verdict stops waiting */

struct session {
	TAILQ_ENTRY(session)	 entry;
	uint64_t		 id;
	struct config		*config;
	enum tier_role		 tier;
	struct netaddr		 client, server, client_key;
	uint16_t		 client_port, server_port;
	char			 client_text[NETADDR_STRLEN];

	struct bufferevent	*bev;
	struct outq		 out;		/* replies leave once per loop pass */
	struct event		*timer;
	enum session_state	 state;
	int64_t			 started_ms, deadline_ms, data_started_ms;
	bool			 counted;	/* holds a slot in the per-client table */
	bool			 waiting_backend;	/* a command is with the backend: stop parsing */
	bool			 processing;	/* re-entrancy guard for session_process_input */
	bool			 read_paused;	/* back-pressure: the backend leg is full */
	uint64_t		 skip_octets;	/* a refused BDAT chunk still to be discarded */
	bool			 discarding_line;	/* inside an over-long command line */
	bool			 client_eof;	/* the client shut down its sending side: answer what it sent, then close */
	bool			 after_refused_data;	/* DATA got no 354: the next line must be a command that may follow */

	char			 helo[SMTP_DOMAIN_MAX + 1];
	bool			 esmtp;
	struct smtp_path	 mail_from;
	char			 log_from[SMTP_PATH_MAX + 1];	/* the last MAIL FROM, kept for the log */
	struct mail_params	 mail_params;
	size_t			 rcpt_attempts;		/* in this transaction */
	size_t			 rcpt_accepted;		/* in this transaction */
	size_t			 rcpt_total;		/* accepted, whole session */
	char			 first_rcpt[SMTP_PATH_MAX + 1];
	unsigned		 messages;
	uint64_t		 bytes;
	unsigned		 errors;

	struct client_observations obs;	/* what the client did, for the checks */
	struct session_dns	 dns;
	struct db_lookup	*db_lookup;	/* shared history read in flight, or NULL */
	char			 current_rcpt[SMTP_PATH_MAX + 1];	/* for the recipient checks */
	enum verdict		 verdict;
	uint64_t		 reasons;	/* bit per enum reason */

	struct relay		*relay;
	enum command_id		 pending_command;	/* sent to the backend, awaiting its reply */
	struct data_reader	 data;
	bool			 data_failed;	/* the backend leg broke during DATA */
	size_t			 data_unread;	/* message bytes left in the input at the last look (a partial line) */
	char			 backend_reply[256];	/* last final reply from the backend, for the log */
	bool			 tls;		/* the client leg is TLS (handshake done) */
	bool			 tls_handshaking;	/* the TLS bufferevent is in place, handshake running */
	char			 tls_info[96];	/* "TLSv1.3/TLS_AES_256_GCM_SHA384", or why it failed */
	char			 backend_tls_info[96];
	char			 stutter[128];	/* tarpit: a suspect's refusal, written a byte per tarpit_delay */
	size_t			 stutter_len, stutter_sent;
};

/* Lifecycle (session.c). */
void	session_accept(int fd, const struct sockaddr *peer, enum tier_role tier);
void	session_free(struct session *s);
void	session_enter_state(struct session *s, enum session_state next);
void	session_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	session_reply_raw(struct session *s, const char *text, size_t len);
void	session_close(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void	session_add_reason(struct session *s, enum reason r);
void	session_set_verdict(struct session *s, enum verdict v, enum reason r);
void	session_process_input(struct session *s);
void	session_arm_command_timer(struct session *s);
void	session_arm_timer(struct session *s, int64_t ms);
void	session_reset_transaction(struct session *s);
void	session_pause_read(struct session *s, bool pause);
bool	session_error(struct session *s);
void	session_shutdown_all(void);
const char *session_state_name(enum session_state st);

/*
 * Nothing below frees the session synchronously: session_close() queues the
 * last reply and the session is freed from its own write or timer
 * callback. So a handler's caller may keep using the session.
 */

/* session_starttls - the STARTTLS command was accepted: drop what was pipelined, 220, handshake. */
void	session_starttls(struct session *s);

/*
 * Policy (session_policy.c): the session's facts go to the verdict, and its
 * decision (verdict, reasons, history effects) is applied here; each
 * returns what the session does next.
 */
enum verdict_action	session_policy_connect(struct session *s);
enum verdict_action	session_policy_greeting(struct session *s);
enum verdict_action	session_policy_command(struct session *s);
enum verdict_action	session_policy_mail(struct session *s);
enum verdict_action	session_policy_rcpt(struct session *s);
/* session_policy_violation - a hard protocol rule broken (pipelining after DATA, bare LF). */
void			session_policy_violation(struct session *s, enum reason r);
/* session_policy_refusal - the printf format (host, client) of the greeting refusal the verdict chose. */
const char		*session_policy_refusal(const struct session *s, bool *tarpit_able);

/* Commands (session_cmd.c). */
void	session_execute_command(struct session *s, char *line, size_t len, bool more_input);
/* session_data_refused - DATA got no 354: whatever the client sent after it is message text, never commands. */
void	session_data_refused(struct session *s);

/* DATA (session_data.c). */
void	session_data_begin(struct session *s);
void	session_data_input(struct session *s);

/* DNS for the client (client_dns.c); session_dns_done is called from the loop when all answered. */
void	client_dns_start(struct session *s);
void	client_dns_abandon(struct session *s);
void	session_dns_done(struct session *s);
const char *registered_domain(const char *name);

/* Called by the relay from its callbacks; the relay returns at once after them. */
void	session_backend_reply(struct session *s, const struct smtp_reply *reply);
void	session_backend_failed(struct session *s, const char *why);
void	session_backend_drained(struct session *s);

#endif
