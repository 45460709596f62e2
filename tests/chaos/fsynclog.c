/* What a power cut keeps: an LD_PRELOAD shim for redis-server that logs, after every successful
 * fsync/fdatasync, the file and the size it had when the call began (everything up to that size
 * is on the disk from then on). tests/chaos/test_power_cut.py cuts the AOF back to the last size
 * logged before the cut: exactly what the disk held, whatever made Redis fsync (everysec's
 * timer, or a WAITAOF). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void note(int fd, long long size) {
    const char *log = getenv("VOLNA_FSYNC_LOG");
    char link[64], path[4096], line[4200];
    ssize_t n;
    int len, out;
    if (!log) return;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    len = snprintf(line, sizeof line, "%lld %s\n", size, path);
    out = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (out >= 0) {
        (void)!write(out, line, len);
        close(out);
    }
}

static long long size_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
}

int fsync(int fd) {
    static int (*real)(int);
    long long size = size_of(fd);
    int r;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    r = real(fd);
    if (r == 0 && size >= 0) note(fd, size);
    return r;
}

int fdatasync(int fd) {
    static int (*real)(int);
    long long size = size_of(fd);
    int r;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    r = real(fd);
    if (r == 0 && size >= 0) note(fd, size);
    return r;
}
