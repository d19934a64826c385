/* warm_image: the memory of the zygote's warm interpreter, laid out to be
 * cheap to fork and to leave: Python's arenas in one region folded into 2 MiB
 * pages, fewer mappings for the libraries the preloads loaded, malloc's free
 * chunks merged, pymalloc's last free blocks taken. Every runner is a fork of
 * this image, so each step saves the same work in every one of them. Called by
 * executor/warm.c in this order: */
#ifndef WARM_IMAGE_H
#define WARM_IMAGE_H

/* Before Python starts: which files are the program's own (never touched). */
void image_note_own_files(void);
/* Before Py_Initialize: reserves the arena region and installs the allocator. */
void image_arenas_open(void);
/* Once warm: gives back the unused rest of the region. */
void image_arenas_close(void);
/* Once warm: joins the read-only mappings of the preloads' libraries to their
 * neighbours. */
void image_merge_mappings(void);
/* Once warm: merges malloc's free chunks and folds writable anonymous memory
 * into 2 MiB pages. */
void image_compact(void);
/* Last: takes pymalloc's free blocks, so that a runner allocates on fresh
 * pages. */
void image_take_free_blocks(void);

#endif
