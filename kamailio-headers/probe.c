/* ABI probe: built by build.rs with the same compiler and defines as the
 * shim, run on the build machine. Prints the version/flags strings the core
 * compares at load time and the layout of every struct Rust touches, so
 * build.rs can check them against `kamailio -I` and bindgen's layout. */
#include <stdio.h>
#include <stddef.h>
#include "wrapper.h"
#include "core/ver_defs.h"

#define SZ(t) printf("size %s %zu\n", #t, sizeof(t))
#define OFF(t, f) printf("offset %s %s %zu\n", #t, #f, offsetof(t, f))

int main(void)
{
	printf("version %s\n", SER_FULL_VERSION);
	printf("flags %s\n", SER_COMPILE_FLAGS);
	SZ(struct module_exports);
	OFF(struct module_exports, cmds);
	OFF(struct module_exports, params);
	OFF(struct module_exports, rpc_methods);
	OFF(struct module_exports, pv_items);
	OFF(struct module_exports, init_mod_f);
	OFF(struct module_exports, init_child_f);
	OFF(struct module_exports, destroy_mod_f);
	SZ(struct cmd_export);
	OFF(struct cmd_export, fixup);
	OFF(struct cmd_export, flags);
	SZ(struct param_export);
	SZ(struct _pv_export);
	OFF(struct _pv_export, getf);
	OFF(struct _pv_export, parse_name);
	OFF(struct _pv_export, iparam);
	SZ(struct _pv_value);
	OFF(struct _pv_value, rs);
	OFF(struct _pv_value, ri);
	OFF(struct _pv_value, flags);
	SZ(struct sip_msg);
	OFF(struct sip_msg, rcv);
	SZ(struct receive_info);
	SZ(str);
	SZ(struct rpc);
	SZ(rpc_export_t);
	return 0;
}
