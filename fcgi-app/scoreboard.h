/* scoreboard: the counters every process of the service adds to and the
 * per-worker slots, in one shared anonymous mapping the master creates before
 * it forks (MAP_SHARED, lock-free atomics): the hot path never writes SQLite
 * for metrics. Never holds pointers (each process maps it at the same place,
 * but nothing relies on that) and never blocks. */
#ifndef SCOREBOARD_H
#define SCOREBOARD_H

#include <stdint.h>

#define SCOREBOARD_ROUTES 32   /* route index 0 is "no route" (404s) */
#define SCOREBOARD_SLOTS 256   /* >= APP_WORKERS' maximum */
#define SCOREBOARD_EXEC_ID 40

/* HTTP codes counted one by one; anything else is counted as "other". */
#define SCOREBOARD_CODES 17
extern const int scoreboard_codes[SCOREBOARD_CODES]; /* last entry 0 = other */

/* Execution duration histogram upper bounds, seconds (+Inf is implicit). */
#define SCOREBOARD_BUCKETS 12
extern const double scoreboard_buckets[SCOREBOARD_BUCKETS];

enum scoreboard_outcome {
	OUTCOME_OK, OUTCOME_ERROR, OUTCOME_TIMEOUT, OUTCOME_MEMORY, OUTCOME_KILLED, OUTCOME_FAILED, OUTCOME_INTERRUPTED,
	OUTCOME_COUNT
};
extern const char *const scoreboard_outcomes[OUTCOME_COUNT];

enum scoreboard_cleanup_counter {
	CLEANUP_OBJECTS, CLEANUP_BYTES, CLEANUP_EXECUTIONS, CLEANUP_TEMPS, CLEANUP_ORPHANS, CLEANUP_PASSES,
	CLEANUP_COUNTERS
};
extern const char *const scoreboard_cleanup_names[CLEANUP_COUNTERS];

/* The stages of a request a worker's CPU time is counted in (process CPU
 * time, CLOCK_PROCESS_CPUTIME_ID): "request" is FastCGI, parsing, checks,
 * the response and the log line; "record" both SQLite writes; "claim" taking
 * a sandbox; "upload" the input files; "run" the execute call (with installs
 * on the fly); "collect" storing the changed files. */
enum scoreboard_stage {
	STAGE_REQUEST, STAGE_RECORD, STAGE_CLAIM, STAGE_UPLOAD, STAGE_RUN, STAGE_COLLECT, STAGE_COUNT
};
extern const char *const scoreboard_stage_names[STAGE_COUNT];

/* Creates the mapping (master, before fork). 0, or -1 (logged). */
int scoreboard_create(void);
/* Child side: which worker slot this process owns (-1: none). */
void scoreboard_set_slot(int slot);

/* Counting; every one is a no-op when there is no scoreboard (CLI, unit tests). */
void scoreboard_request(int route, int http_code);
void scoreboard_execution(enum scoreboard_outcome o, int64_t duration_ms);
void scoreboard_cleanup(enum scoreboard_cleanup_counter what, uint64_t n);

/* Counts this process's CPU time since its previous mark in stage s. */
void scoreboard_stage_mark(enum scoreboard_stage s);

/* The API keys' generation: the master bumps it after writing new keys;
 * a worker that sees it change reads them again. */
uint64_t scoreboard_keys_generation(void);
void scoreboard_keys_changed(void);

/* APP_KEY_MAX_CONCURRENT: this worker's request is the key's (tag: non-zero,
 * from the key's name). 1 when the key has at most limit requests in flight
 * with this one (limit <= 0: no limit), else 0 and nothing held. */
int scoreboard_key_enter(uint64_t tag, int limit);
/* The request ends (no-op when none was entered). */
void scoreboard_key_leave(void);

/* This worker starts running execution id / finished it. */
void scoreboard_exec_begin(const char *id);
void scoreboard_exec_end(void);
/* At worker start: copies the execution id a dead predecessor in the same
 * slot left unfinished into id and clears it. 1 when there was one. */
int scoreboard_take_unfinished(char id[SCOREBOARD_EXEC_ID]);

/* A consistent-enough copy for rendering (each counter read atomically). */
struct scoreboard_view {
	int present;
	uint64_t requests[SCOREBOARD_ROUTES][SCOREBOARD_CODES];
	uint64_t buckets[SCOREBOARD_BUCKETS + 1]; /* not cumulative; last = over the top bound */
	uint64_t exec_count, exec_sum_ms;
	uint64_t outcomes[OUTCOME_COUNT];
	uint64_t cleanup[CLEANUP_COUNTERS];
	uint64_t stage_ns[STAGE_COUNT];
};
void scoreboard_read(struct scoreboard_view *v);

#endif
