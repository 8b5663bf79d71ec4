/* A program that dies of the signal its first argument names, for the
 * coredump tests: compiled with symbols so gdb can name the function. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

__attribute__((noinline)) void crash_segv(void) { *(volatile int *)0 = 1; }
__attribute__((noinline)) void crash_abrt(void) { abort(); }
__attribute__((noinline)) void crash_bus(void) {
    FILE *f = tmpfile();
    char *p = mmap(0, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
    volatile char c = p[0]; /* beyond the end of an empty file: SIGBUS */
    (void)c;
}
__attribute__((noinline)) void crash_quit(void) { raise(SIGQUIT); }

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "segv";
    const char *how = argc > 2 ? argv[2] : "";
    if (!strcmp(how, "limit0")) {
        struct rlimit z = {0, 0};
        setrlimit(RLIMIT_CORE, &z);
    } else if (!strcmp(how, "nodump")) {
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    if (!strcmp(what, "segv")) crash_segv();
    if (!strcmp(what, "abrt")) crash_abrt();
    if (!strcmp(what, "bus")) crash_bus();
    if (!strcmp(what, "quit")) crash_quit();
    return 3;
}
