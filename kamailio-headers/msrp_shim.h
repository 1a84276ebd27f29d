/* C shim: Kamailio facilities that are macros or static inline functions,
 * wrapped as real functions so Rust can call them. Keep it thin: logic lives
 * in Rust. */
#ifndef MSRP_RELAY_SHIM_H
#define MSRP_RELAY_SHIM_H

#include <stddef.h>
#include <sys/socket.h>

struct sip_msg;
struct _pv_spec;
struct _pv_param;

/* logging (LOG_FX): prefix is "<module> [file:line]: " */
int msrp_shim_log_enabled(int level);
void msrp_shim_log(int level, const char *prefix, const char *func,
		const char *msg, int len);

/* memory */
void *msrp_shim_shm_malloc(size_t size);
void msrp_shim_shm_free(void *p);
/* shared memory still free, and all of it (-m), in bytes */
unsigned long msrp_shim_shm_available(void);
unsigned long msrp_shim_shm_size(void);

/* locks (futex based, live in shm) */
void *msrp_shim_lock_alloc(void);
void msrp_shim_lock_dealloc(void *lock);
void msrp_shim_lock_get(void *lock);
void msrp_shim_lock_release(void *lock);

/* configuration framework: call on each pass of a process's loop */
void msrp_shim_cfg_update(void);

/* routes: index of event_route[name] or -1 when absent/empty */
int msrp_shim_event_route_lookup(const char *name);
/* runs event_route with index rt for msg; returns 1 when the route
 * executed 'drop', 0 otherwise, -1 on error */
int msrp_shim_run_event_route(int rt, struct sip_msg *msg);

/* runs the KEMI callback `cb` (event_callback) for msg as the event route
 * "msrp:frame-in"; 0 ok, -1 error */
int msrp_shim_run_kemi_route(const char *cb, int len, struct sip_msg *msg);
/* the same for event `ev` (NUL-terminated, e.g. "msrp:session-end") */
int msrp_shim_run_kemi_event(
		const char *cb, int len, const char *ev, struct sip_msg *msg);

/* Builds a SIP message from an MSRP frame head (like the stock msrp module's
 * sipmsg mode) with rcv filled from the given addresses; falls back to a
 * generic faked message if the head does not parse as SIP. Never NULL unless
 * memory is exhausted. Free with msrp_shim_free_msg. */
struct sip_msg *msrp_shim_fake_msg(const char *head, int len,
		const struct sockaddr *src, const struct sockaddr *dst,
		int conid);
void msrp_shim_free_msg(struct sip_msg *msg);

/* Once per worker: keeps faked-message parsing from scanning pkg memory's
 * free lists (see msrp_shim.c). */
void msrp_shim_pkg_reserve(void);

/* fixup values (fixup_get_svalue / fixup_get_ivalue are macros) */
int msrp_shim_get_svalue(struct sip_msg *msg, void *param,
		const char **s, int *len);

int msrp_shim_get_ivalue(struct sip_msg *msg, void *param, int *val);

/* $msrp(name): store/read the parsed key id in the pv spec */
void msrp_shim_pv_set_name_id(struct _pv_spec *sp, int id);
int msrp_shim_pv_get_name_id(struct _pv_param *param);

/* counters (counter_add is static inline) */
void msrp_shim_counter_add(unsigned short id, int v);

int msrp_shim_tcp_disabled(void);
int msrp_shim_process_no(void);

#endif
