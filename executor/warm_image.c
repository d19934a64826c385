/* warm_image: see warm_image.h. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "util.h"
#include "warm_image.h"

/* ---- Python's arenas ------------------------------------------------------ */

/* The warm interpreter's object arenas (1 MiB each) come out of one region
 * reserved up front, so that they sit side by side in one mapping that
 * image_compact can fold into 2 MiB pages (and fork copies one entry per 2
 * MiB); mmap'd one by one they land between the libraries, each a mapping of
 * its own. Once warm, the unused rest of the region is given back
 * (image_arenas_close): later arenas, in the zygote and in every runner, are
 * mmap'd as usual, and a runner's address space holds no reservation beyond
 * what it uses (RLIMIT_AS counts it). Freed arenas of the region are only
 * returned to the kernel (MADV_DONTNEED), not reused. */
#define ARENA_REGION ((size_t)256 << 20)
static char *arena_base, *arena_next, *arena_end;
static char *fresh_lo, *fresh_hi; /* the last arena mapped outside the region */

static void *arena_alloc(void *ctx, size_t size)
{
	(void)ctx;
	if (arena_next && (size_t)(arena_end - arena_next) >= size) {
		void *p = arena_next;
		arena_next += size;
		return p;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	fresh_lo = p;
	fresh_hi = (char *)p + size;
	return p;
}

static void arena_free(void *ctx, void *ptr, size_t size)
{
	(void)ctx;
	if ((char *)ptr >= arena_base && (char *)ptr < arena_end)
		madvise(ptr, size, MADV_DONTNEED);
	else
		munmap(ptr, size);
}

/* Before Py_Initialize: reserves the region (2 MiB aligned) and installs the
 * allocator. Without the region Python's own allocator stays. */
void image_arenas_open(void)
{
	const size_t huge = (size_t)2 << 20;
	char *p = mmap(NULL, ARENA_REGION + huge, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return;
	char *a = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + ARENA_REGION, (size_t)(p + huge - a));
	arena_base = arena_next = a;
	arena_end = a + ARENA_REGION;
	PyObjectArenaAllocator al = {NULL, arena_alloc, arena_free};
	PyObject_SetArenaAllocator(&al);
}

/* Once warm: the region ends where its arenas end (rounded up to 2 MiB). */
void image_arenas_close(void)
{
	if (!arena_base)
		return;
	const uintptr_t huge = (uintptr_t)2 << 20;
	char *end = (char *)(((uintptr_t)arena_next + huge - 1) & ~(huge - 1));
	if (end < arena_end)
		munmap(end, (size_t)(arena_end - end));
	arena_end = end;
	arena_next = NULL; /* from now on: mmap */
}

/* ---- the image the runners are forked from ------------------------------ */

/* One mapping of /proc/self/maps; path "" for anonymous memory. */
struct mapping {
	uintptr_t lo, hi;
	unsigned long long offset;
	char perms[8];
	char path[256];
};

/* Every mapping of this process, in address order (*n of them; free()). */
static struct mapping *maps_read(size_t *n)
{
	struct mapping *m = NULL;
	size_t cap = 0;
	*n = 0;
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		struct mapping x = {0};
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %*s %*s %255s", &x.lo, &x.hi,
			   x.perms, &x.offset, x.path) < 4)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 256;
			m = xrealloc(m, cap * sizeof(*m));
		}
		m[(*n)++] = x;
	}
	if (f)
		fclose(f);
	return m;
}

/* The files mapped before Python started: this program and what it is linked
 * with (libc, libpython, ...); what the preloads load comes after. */
static char **own_files;
static size_t own_count;

void image_note_own_files(void)
{
	size_t n;
	struct mapping *m = maps_read(&n);
	for (size_t i = 0; i < n; i++) {
		if (m[i].path[0] != '/' || (own_count && strcmp(own_files[own_count - 1], m[i].path) == 0))
			continue;
		own_files = xrealloc(own_files, (own_count + 1) * sizeof(*own_files));
		own_files[own_count++] = xstrdup(m[i].path);
	}
	free(m);
}

static int own_file(const char *path)
{
	for (size_t i = 0; i < own_count; i++)
		if (strcmp(own_files[i], path) == 0)
			return 1;
	return 0;
}

/* Whether b continues a: the same file, next in memory and in the file. */
static int continues(const struct mapping *a, const struct mapping *b)
{
	return a->hi == b->lo && a->offset + (a->hi - a->lo) == b->offset &&
	       strcmp(a->path, b->path) == 0;
}

/* Fewer mappings to copy at each fork and drop at each exit: each library the
 * preloads loaded (extension modules and what they link: ~90 with numpy and
 * pandas) has its read-only parts join the mapping next to them, as linkers
 * laid libraries out before separate-code segments: headers and constants
 * become executable with the code, the relocations (RELRO) writable with the
 * data; four or five mappings become two (~270 fewer). Not this program's own
 * files (libc, libpython, ...): the zygote never runs the preloads' code
 * again, and the code a runner runs can write and run anything in its own
 * memory anyway (ctypes). */
void image_merge_mappings(void)
{
	size_t n;
	struct mapping *m = maps_read(&n);
	int merged = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m[i].perms, "r--p") != 0 || m[i].path[0] != '/' || own_file(m[i].path))
			continue;
		const struct mapping *prev = i > 0 && continues(&m[i - 1], &m[i]) ? &m[i - 1] : NULL;
		const struct mapping *next = i + 1 < n && continues(&m[i], &m[i + 1]) ? &m[i + 1] : NULL;
		int prot = 0;
		if ((prev && strcmp(prev->perms, "r-xp") == 0) || (next && strcmp(next->perms, "r-xp") == 0))
			prot = PROT_READ | PROT_EXEC;
		else if (next && strcmp(next->perms, "rw-p") == 0)
			prot = PROT_READ | PROT_WRITE;
		if (prot && mprotect((void *)m[i].lo, m[i].hi - m[i].lo, prot) == 0)
			merged++;
	}
	free(m);
	log_debug("zygote: %d read-only mappings of the preloads' libraries merged", merged);
}

/* Makes the warm image cheap to fork: the heap's free chunks are merged back
 * (a child's malloc would otherwise walk, and copy, the zygote's free lists),
 * and every writable anonymous region is folded into 2 MiB pages where it
 * spans them, so fork and exit copy and drop one entry per 2 MiB instead of
 * 512. A child's first write still copies only 4 KiB. Best effort: a kernel
 * without MADV_COLLAPSE keeps small pages. */
void image_compact(void)
{
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
	malloc_trim(0);
	/* the trim leaves the merged free chunks unsorted; malloc sorts them into
	 * their bins at the first request none fits exactly, writing to each: here
	 * once, rather than in every runner (a page copied per chunk) */
	void *volatile sort = malloc(64 << 10);
	free(sort);
	const uintptr_t huge = (uintptr_t)2 << 20;
	size_t folded = 0, n;
	struct mapping *m = maps_read(&n);
	for (size_t i = 0; i < n; i++) {
		if (m[i].perms[1] != 'w' || (m[i].path[0] && strcmp(m[i].path, "[heap]") != 0))
			continue;
		uintptr_t a = (m[i].lo + huge - 1) & ~(huge - 1), b = m[i].hi & ~(huge - 1);
		if (b <= a)
			continue;
		if (madvise((void *)a, b - a, MADV_HUGEPAGE) == 0 &&
		    madvise((void *)a, b - a, MADV_COLLAPSE) == 0)
			folded += b - a;
	}
	free(m);
	log_debug("zygote: %zu MiB of the warm image in huge pages", folded >> 20);
}

/* Last, once the image is laid out: every free block of Python's small-object
 * allocator taken (~1 MiB), size class by size class, until a class's next
 * block comes from a new arena (mapped, never touched). A runner's new objects
 * then go to pages the zygote never wrote, a page of zeros each, instead of
 * copies of pages of the warm image (~50 fewer per runner). */
void image_take_free_blocks(void)
{
	size_t taken = 0;
	fresh_lo = fresh_hi = NULL; /* only an arena mapped from here on is new */
	for (size_t size = 16; size <= 512; size += 16) {
		for (;;) {
			char *p = PyObject_Malloc(size);
			if (!p)
				return;
			if (p >= fresh_lo && p < fresh_hi) {
				PyObject_Free(p);
				break;
			}
			taken += size; /* kept for the life of the zygote */
		}
	}
	log_debug("zygote: %zu KiB of free small blocks taken", taken >> 10);
}
