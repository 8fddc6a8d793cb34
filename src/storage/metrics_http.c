/*
 * metrics_http.c - GET /metrics over HTTP, served by libmicrohttpd on its own thread.
 *
 * The HTTP thread never touches the runtime's structures: each scrape asks the network thread
 * for a report (sli_metrics_report, bounded by REPORT_TIMEOUT_MS) and answers 503 if the loop
 * does not answer in time (not started yet, or stopping).  Anything but GET /metrics gets 404
 * (405 for another method on /metrics).
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/sock.h"
#include "storage/storage_int.h"

#define REPORT_TIMEOUT_MS 2000
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct sli_metrics_http {
	struct MHD_Daemon *d;
	int fd;
};

static enum MHD_Result answer_text(struct MHD_Connection *mc, unsigned status, const char *ctype,
                                   const void *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result ret = MHD_queue_response(mc, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	sl_storage *st = cls;
	static const char not_found[] = "not found: try GET /metrics\n";
	static const char unavailable[] = "the storage runtime did not answer in time\n";

	if (*upload_size != 0) {
		*upload_size = 0; /* a body is ignored */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return answer_text(mc, MHD_HTTP_NOT_FOUND, "text/plain", not_found, sizeof(not_found) - 1);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer_text(mc, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_found,
		                   sizeof(not_found) - 1);
	sli_buf b;
	sli_buf_init(&b);
	int rc = sli_metrics_report(st, &b, REPORT_TIMEOUT_MS);
	enum MHD_Result ret;
	if (rc != 0)
		ret = answer_text(mc, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", unavailable,
		                  sizeof(unavailable) - 1);
	else
		ret = answer_text(mc, MHD_HTTP_OK, PROM_CONTENT_TYPE, b.ptr, b.len);
	sli_buf_fini(&b);
	return ret;
}

SL_API int sl_storage_metrics_listen(sl_storage *st, const char *hostport, int *port_out)
{
	struct sli_metrics_http *h;
	int port = 0, rc;

	if (st == NULL || hostport == NULL || st->metrics.http != NULL)
		return SL_EARG;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return SL_ENOMEM;
	if ((h->fd = sli_listen_tcp(hostport, &port)) < 0) {
		rc = h->fd;
		sli_storage_set_error("cannot listen for metrics on %s: %s", hostport, sl_strerror(rc));
		free(h);
		return rc;
	}
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
	                        on_request, st, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->fd,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_END);
	if (h->d == NULL) {
		sli_storage_set_error("cannot start the metrics HTTP server on %s", hostport);
		close(h->fd);
		free(h);
		return SL_EIO;
	}
	st->metrics.http = h;
	if (port_out != NULL)
		*port_out = port;
	return 0;
}

void sli_metrics_http_stop(sl_storage *st)
{
	struct sli_metrics_http *h = st->metrics.http;
	if (h == NULL)
		return;
	/* MHD_stop_daemon joins its thread (a scrape in progress ends within REPORT_TIMEOUT_MS)
	 * and closes the listening socket it was given. */
	MHD_stop_daemon(h->d);
	free(h);
	st->metrics.http = NULL;
}
