/*
 * loop.h - a small epoll event loop (in the spirit of Redis's ae.c).
 *
 * One loop runs on one thread.  It reports readiness of registered file descriptors, calls a
 * periodic tick (heartbeats, timeouts), and runs a wake callback when another thread called
 * sli_loop_wake (an eventfd, so many wakes coalesce into one callback).  Only sli_loop_wake and
 * sli_loop_stop may be called from other threads.
 */
#ifndef SLUICE_NET_LOOP_H
#define SLUICE_NET_LOOP_H

#include <stdint.h>

#define SLI_READ 0x1u
#define SLI_WRITE 0x2u
#define SLI_HUP 0x4u /* reported only: error or hang-up on the fd */

typedef struct sli_loop sli_loop;
typedef void (*sli_io_fn)(sli_loop *l, int fd, uint32_t events, void *arg);
typedef void (*sli_loop_fn)(sli_loop *l, void *arg);

/* 0 or a negative error; *out freed with sli_loop_free (which does not close registered fds). */
int sli_loop_new(sli_loop **out);
void sli_loop_free(sli_loop *l);

/* Registers fd for events (SLI_READ | SLI_WRITE); fn(l, fd, ready, arg) runs on readiness. */
int sli_loop_add(sli_loop *l, int fd, uint32_t events, sli_io_fn fn, void *arg);
/* Changes the interest set of a registered fd. */
int sli_loop_mod(sli_loop *l, int fd, uint32_t events);
/* Unregisters fd; safe to call from inside its own callback.  The caller closes the fd. */
void sli_loop_del(sli_loop *l, int fd);

/* fn(l, arg) runs on the loop thread after any sli_loop_wake. */
void sli_loop_on_wake(sli_loop *l, sli_loop_fn fn, void *arg);
/* fn(l, arg) runs every interval_ms (0 disables). */
void sli_loop_on_tick(sli_loop *l, uint32_t interval_ms, sli_loop_fn fn, void *arg);
/* fn(l, arg) runs after every batch of events, before the loop sleeps again (flush output). */
void sli_loop_on_idle(sli_loop *l, sli_loop_fn fn, void *arg);

/* Thread-safe. */
void sli_loop_wake(sli_loop *l);
/* Thread-safe: makes sli_loop_run return after the current iteration. */
void sli_loop_stop(sli_loop *l);

/* Runs until sli_loop_stop.  0, or a negative error if epoll failed. */
int sli_loop_run(sli_loop *l);

/* Monotonic milliseconds. */
uint64_t sli_now_ms(void);

#endif
