/* holder: a zygote-made runner's memory holder. The runner's address space is
 * a fork of the warm image (~250 mappings, ~45 MB with numpy and pandas), and
 * taking it down when the runner exits costs about a millisecond, which the
 * server would wait through before it answers (a process is reaped only after
 * its exit has dropped its memory). The holder shares that address space
 * (CLONE_VM) and does nothing else, so the runner's exit leaves the teardown
 * to the holder's, which comes when the server kills every process of the
 * sandbox and is not waited for (runner.c, wait_children).
 *
 * Made by the runner after its lockdown, before any code of a run exists in
 * it, as the runner's sibling (CLONE_PARENT: the code's os.wait() never sees
 * it). Before the runner goes on, the holder has put a filter of its own on
 * top of the runner's (sbx_seccomp_holder: its few set-up calls, by argument,
 * and rt_sigsuspend; anything else kills it), closed every descriptor,
 * blocked every signal and named itself "runner-memory"; then it takes the
 * lowest CPU priority and sleeps until SIGKILL. Code that takes it over (it
 * can stop it and rewrite the memory it shares) can make it do nothing else:
 * no file, no process, no signal, only stores to that memory, like the code's
 * own. */
#ifndef HOLDER_H
#define HOLDER_H

#include <sys/types.h>

/* Makes the holder; close_range_works: whether close_range(2) is there (the
 * runner found out when it closed its own descriptors). Its pid, or 0 when
 * there is none (no holder filter, the clone failed, or it was not set up in
 * time and is killed): the runner then takes its memory down itself. */
pid_t holder_start(int close_range_works);

#endif
