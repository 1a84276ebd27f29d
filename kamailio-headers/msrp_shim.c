/* C shim for msrp_relay: real functions around Kamailio macros and static
 * inline helpers. Compiled by build.rs with the exact defines of the installed
 * kamailio binary. */
#include <string.h>
#include "wrapper.h"
#include "core/ip_addr.h"
#include "core/data_lump.h"

int msrp_shim_log_enabled(int level)
{
	return get_debug_level(LOG_MNAME, LOG_MNAME_LEN) >= level;
}

void msrp_shim_log(int level, const char *prefix, const char *func,
		const char *msg, int len)
{
	LOG_FX(DEFAULT_FACILITY, level, NULL, prefix, func, "%.*s\n", len, msg);
}

void *msrp_shim_shm_malloc(size_t size)
{
	return shm_malloc(size);
}

void msrp_shim_shm_free(void *p)
{
	shm_free(p);
}

unsigned long msrp_shim_shm_available(void)
{
	return shm_available();
}

unsigned long msrp_shim_shm_size(void)
{
	return shm_mem_size;
}

void *msrp_shim_lock_alloc(void)
{
	gen_lock_t *l = lock_alloc();
	if(l == NULL)
		return NULL;
	if(lock_init(l) == NULL) {
		lock_dealloc(l);
		return NULL;
	}
	return l;
}

void msrp_shim_lock_dealloc(void *lock)
{
	lock_destroy((gen_lock_t *)lock);
	lock_dealloc((gen_lock_t *)lock);
}

void msrp_shim_lock_get(void *lock)
{
	lock_get((gen_lock_t *)lock);
}

void msrp_shim_lock_release(void *lock)
{
	lock_release((gen_lock_t *)lock);
}

void msrp_shim_cfg_update(void)
{
	cfg_update();
}

int msrp_shim_event_route_lookup(const char *name)
{
	int rt = route_lookup(&event_rt, (char *)name);
	if(rt < 0 || event_rt.rlist[rt] == NULL)
		return -1;
	return rt;
}

int msrp_shim_run_event_route(int rt, struct sip_msg *msg)
{
	struct run_act_ctx ctx;
	int rtb;

	if(rt < 0 || rt >= event_rt.idx || event_rt.rlist[rt] == NULL || msg == NULL)
		return -1;
	rtb = get_route_type();
	set_route_type(EVENT_ROUTE);
	init_run_actions_ctx(&ctx);
	run_top_route(event_rt.rlist[rt], msg, &ctx);
	set_route_type(rtb);
	ksr_msg_env_reset();
	return (ctx.run_flags & DROP_R_F) ? 1 : 0;
}

int msrp_shim_run_kemi_route(const char *cb, int len, struct sip_msg *msg)
{
	return msrp_shim_run_kemi_event(cb, len, "msrp:frame-in", msg);
}

int msrp_shim_run_kemi_event(
		const char *cb, int len, const char *ev, struct sip_msg *msg)
{
	struct run_act_ctx ctx;
	sr_kemi_eng_t *keng;
	str cbname;
	str evname;
	int rtb;
	int ret = 0;

	keng = sr_kemi_eng_get();
	if(keng == NULL || msg == NULL || ev == NULL)
		return -1;
	cbname.s = (char *)cb;
	cbname.len = len;
	evname.s = (char *)ev;
	evname.len = strlen(ev);
	rtb = get_route_type();
	set_route_type(EVENT_ROUTE);
	init_run_actions_ctx(&ctx);
	if(sr_kemi_ctx_route(keng, &ctx, msg, EVENT_ROUTE, &cbname, &evname) < 0)
		ret = -1;
	set_route_type(rtb);
	ksr_msg_env_reset();
	return ret;
}

/* Same prefix as the stock msrp module's sipmsg mode, so $hdr(...) and the
 * auth functions see the MSRP headers as SIP headers. */
#define MSRP_FAKED_SIPMSG_START                                \
	"MSRP sip:a@127.0.0.1 SIP/2.0\r\n"                           \
	"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKa\r\n"          \
	"From: <b@127.0.0.1>;tag=a\r\n"                              \
	"To: <a@127.0.0.1>\r\n"                                      \
	"Call-ID: a\r\n"                                             \
	"CSeq: 1 MSRP\r\n"                                           \
	"Content-Length: 0\r\n"                                      \
	"MSRP-First-Line: "

static sip_msg_t _msrp_faked_msg;
static char *_msrp_faked_buf = NULL;
static int _msrp_faked_buf_size = 0;
static unsigned int _msrp_faked_no = 0;
static int _msrp_faked_is_generic = 0;

static void msrp_shim_set_rcv(struct receive_info *rcv,
		const struct sockaddr *src, const struct sockaddr *dst, int conid)
{
	union sockaddr_union su;

	memset(rcv, 0, sizeof(*rcv));
	if(src != NULL) {
		memset(&su, 0, sizeof(su));
		memcpy(&su, src, (src->sa_family == AF_INET6)
				? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
		su2ip_addr(&rcv->src_ip, &su);
		rcv->src_port = su_getport(&su);
		rcv->src_su = su;
	}
	if(dst != NULL) {
		memset(&su, 0, sizeof(su));
		memcpy(&su, dst, (dst->sa_family == AF_INET6)
				? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
		su2ip_addr(&rcv->dst_ip, &su);
		rcv->dst_port = su_getport(&su);
	}
	rcv->proto = PROTO_TCP;
	rcv->proto_reserved1 = conid;
	rcv->bind_address = NULL;
}

struct sip_msg *msrp_shim_fake_msg(const char *head, int len,
		const struct sockaddr *src, const struct sockaddr *dst, int conid)
{
	sip_msg_t *fmsg;
	int plen = sizeof(MSRP_FAKED_SIPMSG_START) - 1;
	int need = plen + len + 3;

	_msrp_faked_is_generic = 0;
	if(head != NULL && len > 0) {
		if(need > _msrp_faked_buf_size) {
			char *nb = (char *)pkg_malloc(need);
			if(nb != NULL) {
				if(_msrp_faked_buf != NULL)
					pkg_free(_msrp_faked_buf);
				_msrp_faked_buf = nb;
				_msrp_faked_buf_size = need;
			}
		}
		if(need <= _msrp_faked_buf_size) {
			memcpy(_msrp_faked_buf, MSRP_FAKED_SIPMSG_START, plen);
			memcpy(_msrp_faked_buf + plen, head, len);
			memcpy(_msrp_faked_buf + plen + len, "\r\n", 2);
			_msrp_faked_buf[plen + len + 2] = '\0';

			memset(&_msrp_faked_msg, 0, sizeof(sip_msg_t));
			_msrp_faked_msg.buf = _msrp_faked_buf;
			_msrp_faked_msg.len = plen + len + 2;
			_msrp_faked_msg.set_global_address = default_global_address;
			_msrp_faked_msg.set_global_port = default_global_port;
			if(parse_msg(_msrp_faked_msg.buf, _msrp_faked_msg.len,
					   &_msrp_faked_msg) == 0) {
				_msrp_faked_msg.id = 1 + _msrp_faked_no++;
				_msrp_faked_msg.pid = my_pid();
				clear_branches();
				msrp_shim_set_rcv(&_msrp_faked_msg.rcv, src, dst, conid);
				return &_msrp_faked_msg;
			}
			free_sip_msg(&_msrp_faked_msg);
			memset(&_msrp_faked_msg, 0, sizeof(sip_msg_t));
		}
	}
	/* generic faked message: the route still runs, $msrp(...) still works */
	fmsg = faked_msg_next();
	if(fmsg == NULL)
		return NULL;
	_msrp_faked_is_generic = 1;
	msrp_shim_set_rcv(&fmsg->rcv, src, dst, conid);
	return fmsg;
}

/* Q_MALLOC (Debian's pkg memory manager) keeps free fragments in ~2000
 * size buckets and, with mem_join, merges a freed fragment with its free
 * neighbours: every small block a frame needs (the hdr_field and via_body
 * parse_msg() allocates for each faked message, the rvalues of the script's
 * string comparisons, ...) returns into the one big free fragment at the
 * end, and the next allocation scans every bucket up to it (about 100 KB
 * of bucket heads with DBG_QM_MALLOC: 13 % of the worker's CPU at 1 KiB
 * messages). A ladder of free fragments of graded sizes, each between two
 * fragments that stay allocated, is found within a few buckets instead;
 * what a request splits off a rung merges back into it when freed.
 * Rungs: every 16 bytes up to 512, then 25 % apart up to 16 KiB (the end of
 * Q_MALLOC's exact buckets); 47 rungs, 80 KB of pkg memory per worker. */
#define MSRP_LADDER_MAX 64
void msrp_shim_pkg_reserve(void)
{
	void *rung[MSRP_LADDER_MAX];
	unsigned long size = 16;
	int n = 0;
	int i;

	while(n < MSRP_LADDER_MAX && size <= 16384) {
		rung[n] = pkg_malloc(size);
		/* the guard after the rung stays allocated for the life of the
		 * process (and keeps the rung from merging with what follows) */
		if(rung[n] == NULL)
			break;
		if(pkg_malloc(8) == NULL) {
			pkg_free(rung[n]);
			break;
		}
		n++;
		size = (size < 512) ? size + 16 : (size + size / 4 + 15) & ~15UL;
	}
	for(i = 0; i < n; i++)
		pkg_free(rung[i]);
}

void msrp_shim_free_msg(struct sip_msg *msg)
{
	if(msg == &_msrp_faked_msg && !_msrp_faked_is_generic) {
		free_sip_msg(msg);
		memset(&_msrp_faked_msg, 0, sizeof(sip_msg_t));
	}
}

int msrp_shim_get_svalue(struct sip_msg *msg, void *param,
		const char **s, int *len)
{
	str v = STR_NULL;
	if(fixup_get_svalue(msg, (gparam_t *)param, &v) != 0)
		return -1;
	*s = v.s;
	*len = v.len;
	return 0;
}

int msrp_shim_get_ivalue(struct sip_msg *msg, void *param, int *val)
{
	if(fixup_get_ivalue(msg, (gparam_t *)param, val) != 0)
		return -1;
	return 0;
}

void msrp_shim_pv_set_name_id(struct _pv_spec *sp, int id)
{
	sp->pvp.pvn.type = PV_NAME_INTSTR;
	sp->pvp.pvn.u.isname.type = 0;
	sp->pvp.pvn.u.isname.name.n = id;
}

int msrp_shim_pv_get_name_id(struct _pv_param *param)
{
	if(param == NULL || param->pvn.type != PV_NAME_INTSTR)
		return -1;
	return param->pvn.u.isname.name.n;
}

void msrp_shim_counter_add(unsigned short id, int v)
{
	counter_handle_t h;
	h.id = id;
	counter_add(h, v);
}

int msrp_shim_tcp_disabled(void)
{
	return tcp_disable;
}

int msrp_shim_process_no(void)
{
	return process_no;
}
