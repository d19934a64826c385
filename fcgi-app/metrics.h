/* metrics: GET /metrics in the Prometheus text format (version 0.0.4). Reads
 * the scoreboard's counters and, for the gauges, the pool and object tables;
 * never writes anything. */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>

#include "app.h"

/* Returns the exposition text (the caller frees it) and its length. A gauge
 * whose query fails is left out (the scrape still succeeds). */
char *metrics_render(struct app *app, size_t *len);

#endif
