/*
 * cli.h - helpers shared by the sluiced and sluice programs (compiled into both, not part of
 * libsluice): a buffered output writer, the row escapes of the command-line contract, and a
 * small option parser.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- buffered output (one write(2) per flush, never per line) ---- */

typedef struct cli_out {
	int fd;
	char *buf;
	size_t len, cap;
	int err; /* first write error (-errno), sticky */
} cli_out;

/* 0 or -ENOMEM. */
int cli_out_init(cli_out *o, int fd, size_t cap);
/* Flushes, then frees the buffer.  Returns the sticky error (0 if every write succeeded). */
int cli_out_fini(cli_out *o);
/* Writes everything buffered.  0 or the sticky -errno. */
int cli_out_flush(cli_out *o);
void cli_out_put(cli_out *o, const void *p, size_t n);
void cli_out_str(cli_out *o, const char *s);
void cli_out_char(cli_out *o, char c);
void cli_out_u64(cli_out *o, uint64_t v);
void cli_out_i64(cli_out *o, int64_t v);
/* Writes row bytes with tab, newline and backslash as \t, \n, \\. */
void cli_out_escaped(cli_out *o, const uint8_t *p, size_t n);

/* ---- escapes ---- */

/* Undoes \t, \n and \\ in s[0, n) in place.  Returns the new length, or -1 with a reason in
 * why (e.g. "invalid escape \q") for any other backslash sequence. */
ssize_t cli_unescape(char *s, size_t n, char *why, size_t whylen);

/* ---- arguments ---- */

typedef struct cli_opt {
	const char *name; /* long option without "--" */
	int has_arg;
} cli_opt;

typedef struct cli_args {
	int argc;
	char **argv;
	int i;          /* next argument */
	int only_positional; /* after "--" */
} cli_args;

enum { CLI_END = 0, CLI_OPTION = 1, CLI_POSITIONAL = 2, CLI_BAD = -1 };

void cli_args_init(cli_args *a, int argc, char **argv, int first);

/* Returns CLI_OPTION with *opt (an element of opts, which ends with a NULL name) and *val (its
 * argument or NULL), CLI_POSITIONAL with *val, CLI_END, or CLI_BAD with a one-line message in
 * err.  Accepts "--name value", "--name=value", "-h" for --help, "-V" for --version, and "--"
 * before positionals. */
int cli_args_next(cli_args *a, const cli_opt *opts, const cli_opt **opt, const char **val,
                  char *err, size_t errlen);

/* Parses a decimal u64 (no sign, no spaces).  0 or -1. */
int cli_parse_u64(const char *s, uint64_t *out);
/* Parses a decimal i64 with an optional sign.  0 or -1. */
int cli_parse_i64(const char *s, size_t n, int64_t *out);
/* 0 if s is HOST:PORT that the library accepts (IPv4 or localhost; empty host = any). */
int cli_check_hostport(const char *s);
/* "HOST:PORT[,HOST:PORT...]": the addresses of one storage process (primary and standbys). */
int cli_check_server_list(const char *s);

/* ---- TLS and authentication options (cli_security.c) ---- */

typedef struct cli_security {
	const char *tls_ca, *tls_cert, *tls_key, *tls_client_ca; /* file names, from argv */
	const char *token_file;
	char *token; /* read from token_file by cli_security_load */
} cli_security;

/* The options of every client command (sluiced adds --tls-client-ca). */
#define CLI_SECURITY_OPTS {"tls-ca", 1}, {"tls-cert", 1}, {"tls-key", 1}, {"auth-token-file", 1}
#define CLI_SECURITY_HELP                                                                         \
	"  --tls-ca FILE        speak TLS, verifying the server's certificate against this CA (PEM)\n" \
	"  --tls-cert FILE      with --tls-key: the client certificate for a server that wants one\n"  \
	"  --tls-key FILE       the private key of --tls-cert\n"                                        \
	"  --auth-token-file F  send the token in F (its first line; the file must be mode 600)\n"

/* The program's settings (one per process: the options apply to its one command). */
extern cli_security cli_sec;

/* ---- a short conversation with one storage process (cli_conn.c) ---- */

struct sli_frame;
struct sli_buf;
struct ssl_ctx_st;
struct ssl_st;

/* Connected (with TLS per cli_sec), everything under one deadline. */
typedef struct cli_conn {
	int fd;
	struct ssl_ctx_st *ctx;
	struct ssl_st *ssl;
	uint64_t deadline;
} cli_conn;

uint64_t cli_now_ms(void);
/* Connects to server (and does the TLS handshake when cli_sec asks for TLS); the deadline for
 * the whole conversation is timeout_ms from now.  0, or a negative code with a one-line
 * reason in err (k is closed then). */
int cli_conn_open(cli_conn *k, const char *server, uint32_t timeout_ms, char *err, size_t errlen);
/* A Hello from the program called name (a string literal), with cli_sec's token if any. */
void cli_conn_hello(struct sli_frame *f, const char *name);
/* Sends all of b.  0 or a negative code. */
int cli_conn_send(cli_conn *k, const struct sli_buf *b);
/* Reads until one frame is decoded into *f, pointing into buf (cap bytes, *len of them used);
 * Pings, and Hellos unless want_hello, are skipped.  The frame's size, or a negative code. */
ssize_t cli_conn_next(cli_conn *k, uint8_t *buf, size_t cap, size_t *len, struct sli_frame *f,
                      int want_hello);
void cli_conn_close(cli_conn *k);

/* Stores the option if it is one of the above: 1, else 0. */
int cli_security_opt(cli_security *s, const char *name, const char *val);
/* Checks the options and reads the token file.  0, or -1 with a one-line reason in err. */
int cli_security_load(cli_security *s, char *err, size_t errlen);
void cli_security_fini(cli_security *s);

/* ---- sluiced's limit flags (cli_limits.c) ---- */

struct sl_storage_config;
#define CLI_LIMIT_OPTS                                                                          \
	{"max-connections", 1}, {"max-subscriptions", 1}, {"max-subscribe-rate", 1},            \
	{"subscribe-burst", 1}, {"handshake-timeout", 1}, {"idle-timeout", 1}, {"max-frame", 1}, \
	{"max-output", 1}, {"max-batch-bytes", 1}, {"max-batch-rows", 1}, {"max-row", 1}

/* If name is one of CLI_LIMIT_OPTS, parses val into its field of cfg: 1, or -1 with a one-line
 * message in err for a bad value.  0 if name is not a limit flag. */
int cli_limit_option(const char *name, const char *val, struct sl_storage_config *cfg, char *err,
                     size_t errlen);
/* Raises the soft open-file limit (within the hard one) to max_connections plus a margin.
 * 0; 1 with a note in note[] when the hard limit is too low; -1 if getrlimit fails. */
int cli_raise_nofile(uint32_t max_connections, char *note, size_t notelen);

/* ---- sluice's client commands: what they share (cli_client.c) ---- */

struct sl_client;
struct sl_source_info;

#define CLI_DEFAULT_SERVER "127.0.0.1:6876"
#define CLI_REQUEST_TIMEOUT_MS 30000

/* Prints "sluice: MSG (see sluice CMD --help)" on stderr; returns 2, the exit status for bad
 * arguments. */
int cli_bad_args(const char *cmd, const char *msg);
/* Connects, retrying a refused connection for about 5 s (the server may be starting).  Once
 * connected, a lost connection is retried for retry_for_ms (the client runtime's reconnects).
 * Prints the one-line error itself.  0 or the error. */
int cli_connect_retry(const char *server, uint32_t retry_for_ms, struct sl_client **out);
/* cli_connect_retry with the client's default reconnect time. */
int cli_connect(const char *server, struct sl_client **out);
/* Finds SOURCE by name.  Prints the error itself.  0 with *infos (free with sl_source_info_free)
 * and *found, or non-zero. */
int cli_find_source(struct sl_client *c, const char *server, const char *name,
                    struct sl_source_info **infos, size_t *n, struct sl_source_info **found);
/* Exit status for a failed write to stdout: a closed pipe (`| head`) is not an error. */
int cli_out_status(int rc);

/* sluice tail (cli_tail.c): exit status. */
int cli_tail(int argc, char **argv);
/* sluice sources (cli_sources.c): exit status. */
int cli_sources(int argc, char **argv);
/* sluice ingest (cli_ingest.c): exit status. */
int cli_ingest(int argc, char **argv);
/* Parses one input line (p[0, len), no newline; unescaped in place) of ingest's input into
 * *up (its row points into p).  0, or -1 after printing "line LINENO: reason" on stderr. */
struct sl_update;
int cli_ingest_line(char *p, size_t len, int updates, size_t lineno, struct sl_update *up);
/* sluice ingest --stream (cli_ingest_stream.c): reads stdin as it arrives through a producer
 * on c with cfg, printing each batch's time as it is acknowledged.  Exit status. */
struct sl_producer_config;
int cli_ingest_stream(struct sl_client *c, uint64_t source, int updates,
                      const struct sl_producer_config *cfg);
/* sluice promote (cli_promote.c): exit status. */
int cli_promote(int argc, char **argv);
/* ---- progress on a terminal (cli_progress.c) ---- */

typedef struct cli_progress {
	int on;    /* stderr is a terminal */
	int drawn; /* a line is on the screen */
	uint64_t last_ms;
} cli_progress;

void cli_progress_init(cli_progress *p);
/* Whether to redraw now: stderr is a terminal and, unless force, 200 ms passed since the last
 * redraw.  When it says 1, the caller formats its line and passes it to cli_progress_draw. */
int cli_progress_due(cli_progress *p, int force);
void cli_progress_draw(cli_progress *p, const char *line);
/* Ends the line (the last one drawn stays on the screen). */
void cli_progress_end(cli_progress *p);

/* ---- --config FILE (cli_config.c) ---- */

typedef struct cli_config {
	int argc;    /* the merged arguments: the file's as flags, then the command line's */
	char **argv; /* owned when text is set, else the caller's argv */
	char *text;  /* the file's contents; the values in argv point into it */
	char **keys; /* the "--key" strings built for the file's lines */
	int nkeys;
} cli_config;

/* If the command line gives --config FILE (an option in opts), reads FILE ("key = value" per
 * line, keys the long names in opts) and sets cfg->argc/argv to its flags followed by the
 * command line's, leaving out every key the command line also gives.  Without --config,
 * cfg->argv is argv.  0, or -1 with a one-line message (naming the file and line) in err.
 * cli_config_fini frees what it allocated, also after a failure. */
int cli_config_merge(int argc, char **argv, const cli_opt *opts, cli_config *cfg, char *err,
                     size_t errlen);
void cli_config_fini(cli_config *cfg);

/* ---- the service manager (cli_notify.c; no-ops without NOTIFY_SOCKET) ---- */

/* STATUS=status: what the program is doing now. */
void cli_notify_status(const char *status);
/* READY=1 with a STATUS. */
void cli_notify_ready(const char *status);
/* STOPPING=1 with a STATUS. */
void cli_notify_stopping(const char *status);
/* The watchdog interval the manager asked for in microseconds, or 0 when there is none. */
uint64_t cli_notify_watchdog_usec(void);
/* WATCHDOG=1: the program is alive. */
void cli_notify_watchdog(void);

/* Prints "PROGRAM X.Y.Z (git REV)" on stdout (cli_version.c). */
void cli_print_version(const char *program);
/* sluice stat (cli_stat.c): exit status. */
int cli_stat(int argc, char **argv);

#endif
