/* One thread that feeds every open Count stream a tick per interval: the shape the worker's
 * scheduler will have (one loop serving all streams), not a thread per call. */
#ifndef DUET_DEMO_STREAM_PUMP_H
#define DUET_DEMO_STREAM_PUMP_H

#include <stdint.h>

#include "rpc.h"

typedef struct demo_pump demo_pump;

demo_pump *demo_pump_new(uint32_t interval_ms);

/* Takes over the call: it gets `ticks` messages, then END; a cancelled call is ended. */
void demo_pump_add(demo_pump *pump, duet_rpc_call *call, uint32_t ticks);

/* Ends every call it holds (UNAVAILABLE) and stops the thread. */
void demo_pump_stop(demo_pump *pump);
void demo_pump_free(demo_pump *pump);

#endif
