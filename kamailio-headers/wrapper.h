/* Kamailio headers that msrp_relay binds to (bindgen input and shim prelude).
 * Compiled with exactly the defines of the installed kamailio binary
 * (derived by build.rs from `kamailio -I`). */
#include <sys/socket.h>
#include <netinet/in.h>
#include "core/sr_module.h"
#include "core/mod_fix.h"
#include "core/dprint.h"
#include "core/mem/shm.h"
#include "core/mem/pkg.h"
#include "core/locking.h"
#include "core/timer.h"
#include "core/timer_proc.h"
#include "core/events.h"
#include "core/fmsg.h"
#include "core/action.h"
#include "core/route.h"
#include "core/rpc.h"
#include "core/rpc_lookup.h"
#include "core/pvar.h"
#include "core/kemi.h"
#include "core/pt.h"
#include "core/cfg/cfg_struct.h"
#include "core/receive.h"
#include "core/parser/msg_parser.h"
#include "core/globals.h"
#include "core/ut.h"
#include "core/counters.h"
#include "core/dset.h"

#include "msrp_shim.h"
