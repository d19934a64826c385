/* app: what one worker process holds while it serves requests. Opened after
 * fork (the database connection never crosses a fork). */
#ifndef APP_H
#define APP_H

#include "access.h"
#include "config.h"
#include "db.h"
#include "store.h"

struct app {
	const struct config *cfg; /* borrowed from the master */
	struct db *db;            /* owned, this process only */
	struct store store;       /* owned */
	int notify_fd;            /* write end of the pool manager's pipe */
	int ready_fd;             /* the pool's announcements of ready sandboxes */
	struct access access;     /* the API keys as this worker last read them */
	int wake_pool;            /* a sandbox was released: the pool manager is
				   * woken once the answer is out (worker.c) */
};

#endif
