/* scoreboard: the shared counters and worker slots (see scoreboard.h). */
#include "scoreboard.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "log.h"

const int scoreboard_codes[SCOREBOARD_CODES] = {200, 201, 400, 401, 403, 404, 405, 408, 411, 413, 422,
						429, 500, 502, 503, 507, 0};
const double scoreboard_buckets[SCOREBOARD_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600};
const char *const scoreboard_outcomes[OUTCOME_COUNT] = {"ok", "error", "timeout", "memory",
							"killed", "failed", "interrupted"};
const char *const scoreboard_cleanup_names[CLEANUP_COUNTERS] = {"objects", "object_bytes", "executions",
								"temp_files", "orphan_files", "passes"};
const char *const scoreboard_stage_names[STAGE_COUNT] = {"request", "record", "claim", "upload", "run", "collect"};

struct slot {
	atomic_int busy;          /* 1 while exec_id names a run in flight */
	char exec_id[SCOREBOARD_EXEC_ID]; /* written only by the slot's owner */
	atomic_uint_fast64_t key; /* tag of the key whose request is in flight, 0: none */
};

struct board {
	atomic_uint_fast64_t requests[SCOREBOARD_ROUTES][SCOREBOARD_CODES];
	atomic_uint_fast64_t buckets[SCOREBOARD_BUCKETS + 1];
	atomic_uint_fast64_t exec_count, exec_sum_ms;
	atomic_uint_fast64_t outcomes[OUTCOME_COUNT];
	atomic_uint_fast64_t cleanup[CLEANUP_COUNTERS];
	atomic_uint_fast64_t stage_ns[STAGE_COUNT];
	atomic_uint_fast64_t keys_generation; /* bumped by the master when the keys change */
	struct slot slots[SCOREBOARD_SLOTS];
};

static struct board *board;
static int my_slot = -1;

int scoreboard_create(void)
{
	void *p = mmap(NULL, sizeof(struct board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_error("scoreboard: mmap: %s", strerror(errno));
		return -1;
	}
	board = p; /* zero-filled: every counter starts at 0 */
	return 0;
}

void scoreboard_set_slot(int slot)
{
	my_slot = slot >= 0 && slot < SCOREBOARD_SLOTS ? slot : -1;
	if (board && my_slot >= 0) /* a predecessor that died mid-request */
		atomic_store(&board->slots[my_slot].key, 0);
}

uint64_t scoreboard_keys_generation(void)
{
	return board ? atomic_load(&board->keys_generation) : 0;
}

void scoreboard_keys_changed(void)
{
	if (board)
		atomic_fetch_add(&board->keys_generation, 1);
}

/* Publish first, then count (sequentially consistent): of two requests that
 * race for a key's last place each sees the other, so both may be refused,
 * but the limit is never exceeded. */
int scoreboard_key_enter(uint64_t tag, int limit)
{
	if (!board || my_slot < 0 || tag == 0 || limit <= 0)
		return 1;
	atomic_store(&board->slots[my_slot].key, tag);
	int n = 0;
	for (int i = 0; i < SCOREBOARD_SLOTS; i++)
		n += atomic_load(&board->slots[i].key) == tag;
	if (n <= limit)
		return 1;
	atomic_store(&board->slots[my_slot].key, 0);
	return 0;
}

void scoreboard_key_leave(void)
{
	if (board && my_slot >= 0)
		atomic_store(&board->slots[my_slot].key, 0);
}

void scoreboard_request(int route, int http_code)
{
	if (!board)
		return;
	if (route < 0 || route >= SCOREBOARD_ROUTES)
		route = 0;
	int c = SCOREBOARD_CODES - 1;
	for (int i = 0; i < SCOREBOARD_CODES - 1; i++)
		if (scoreboard_codes[i] == http_code)
			c = i;
	atomic_fetch_add_explicit(&board->requests[route][c], 1, memory_order_relaxed);
}

void scoreboard_execution(enum scoreboard_outcome o, int64_t duration_ms)
{
	if (!board || o < 0 || o >= OUTCOME_COUNT)
		return;
	atomic_fetch_add_explicit(&board->outcomes[o], 1, memory_order_relaxed);
	if (duration_ms < 0)
		return; /* no duration known (interrupted) */
	int b = SCOREBOARD_BUCKETS;
	for (int i = SCOREBOARD_BUCKETS - 1; i >= 0; i--)
		if ((double)duration_ms <= scoreboard_buckets[i] * 1000)
			b = i;
	atomic_fetch_add_explicit(&board->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&board->exec_sum_ms, (uint64_t)duration_ms, memory_order_relaxed);
	atomic_fetch_add_explicit(&board->exec_count, 1, memory_order_relaxed);
}

void scoreboard_cleanup(enum scoreboard_cleanup_counter what, uint64_t n)
{
	if (board && what >= 0 && what < CLEANUP_COUNTERS)
		atomic_fetch_add_explicit(&board->cleanup[what], n, memory_order_relaxed);
}

void scoreboard_stage_mark(enum scoreboard_stage s)
{
	static uint64_t last;
	struct timespec ts;
	if (!board || s < 0 || s >= STAGE_COUNT || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
		return;
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (last && now > last)
		atomic_fetch_add_explicit(&board->stage_ns[s], now - last, memory_order_relaxed);
	last = now;
}

void scoreboard_exec_begin(const char *id)
{
	if (!board || my_slot < 0)
		return;
	struct slot *s = &board->slots[my_slot];
	size_t n = strlen(id);
	if (n >= SCOREBOARD_EXEC_ID)
		n = SCOREBOARD_EXEC_ID - 1;
	memcpy(s->exec_id, id, n);
	s->exec_id[n] = '\0';
	atomic_store_explicit(&s->busy, 1, memory_order_release);
}

void scoreboard_exec_end(void)
{
	if (board && my_slot >= 0)
		atomic_store_explicit(&board->slots[my_slot].busy, 0, memory_order_release);
}

int scoreboard_take_unfinished(char id[SCOREBOARD_EXEC_ID])
{
	if (!board || my_slot < 0)
		return 0;
	struct slot *s = &board->slots[my_slot];
	if (!atomic_load_explicit(&s->busy, memory_order_acquire))
		return 0;
	memcpy(id, s->exec_id, SCOREBOARD_EXEC_ID);
	id[SCOREBOARD_EXEC_ID - 1] = '\0';
	atomic_store_explicit(&s->busy, 0, memory_order_release);
	return 1;
}

void scoreboard_read(struct scoreboard_view *v)
{
	memset(v, 0, sizeof(*v));
	if (!board)
		return;
	v->present = 1;
	for (int r = 0; r < SCOREBOARD_ROUTES; r++)
		for (int c = 0; c < SCOREBOARD_CODES; c++)
			v->requests[r][c] = atomic_load_explicit(&board->requests[r][c], memory_order_relaxed);
	for (int b = 0; b <= SCOREBOARD_BUCKETS; b++)
		v->buckets[b] = atomic_load_explicit(&board->buckets[b], memory_order_relaxed);
	v->exec_count = atomic_load_explicit(&board->exec_count, memory_order_relaxed);
	v->exec_sum_ms = atomic_load_explicit(&board->exec_sum_ms, memory_order_relaxed);
	for (int o = 0; o < OUTCOME_COUNT; o++)
		v->outcomes[o] = atomic_load_explicit(&board->outcomes[o], memory_order_relaxed);
	for (int k = 0; k < CLEANUP_COUNTERS; k++)
		v->cleanup[k] = atomic_load_explicit(&board->cleanup[k], memory_order_relaxed);
	for (int k = 0; k < STAGE_COUNT; k++)
		v->stage_ns[k] = atomic_load_explicit(&board->stage_ns[k], memory_order_relaxed);
}
