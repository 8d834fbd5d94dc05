/*
 * LD_PRELOAD shim for scripts/power-loss (issue 19 part 2; docs/adr/0028-torture-harness.md):
 * records, in order, every change a process makes to the files under $PL_DIR (creations,
 * writes, truncations, unlinks, renames) and every durability barrier (fsync/fdatasync of a
 * file, fsync of the directory), in the log file $PL_LOG. After the process is killed,
 * scripts/power-loss-sim/replay.py rebuilds the directory as a disk would show it after a power cut:
 * only what a barrier covered, plus (in "prefix" mode) a random prefix of what was not.
 *
 * Writes through mmap (SQLite's -shm wal-index) are not seen; that file is never synced, and
 * SQLite rebuilds it from the WAL on the first open after a crash.
 *
 * Record: u8 op, u32 path length, path bytes, u64 a, u64 b, then b data bytes for a write.
 *   1 create (path)      2 write (a = offset, b = length, data)   3 truncate (a = size)
 *   4 sync (file)        5 dirsync (directory)                     6 unlink (path)
 *   7 rename (path = "old\0new")
 * Every record is written by one writev under a lock, after the call it describes succeeded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *paths[MAX_FD];
static int log_fd = -1;
static char dir[PATH_MAX];
static size_t dir_len;
static int ready;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rename)(const char *, const char *);

static void init(void) {
  if (ready) return;
  real_open = dlsym(RTLD_NEXT, "open");
  real_open64 = dlsym(RTLD_NEXT, "open64");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_openat64 = dlsym(RTLD_NEXT, "openat64");
  real_close = dlsym(RTLD_NEXT, "close");
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite");
  real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
  real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_unlink = dlsym(RTLD_NEXT, "unlink");
  real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
  real_rename = dlsym(RTLD_NEXT, "rename");
  const char *d = getenv("PL_DIR");
  const char *l = getenv("PL_LOG");
  if (d && l && strlen(d) < sizeof dir) {
    strcpy(dir, d);
    dir_len = strlen(dir);
    while (dir_len > 1 && dir[dir_len - 1] == '/') dir[--dir_len] = 0;
    log_fd = real_open(l, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  ready = 1;
}

/* The absolute path of `path` (relative to `at`, or the cwd), or NULL when outside PL_DIR. */
static char *watched(int at, const char *path) {
  if (log_fd < 0 || !path) return NULL;
  char buf[2 * PATH_MAX + 2];
  if (path[0] == '/') {
    snprintf(buf, sizeof buf, "%s", path);
  } else if (at == AT_FDCWD) {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    snprintf(buf, sizeof buf, "%s/%s", cwd, path);
  } else if (at >= 0 && at < MAX_FD && paths[at]) {
    snprintf(buf, sizeof buf, "%s/%s", paths[at], path);
  } else {
    return NULL;
  }
  if (strncmp(buf, dir, dir_len) != 0 || (buf[dir_len] != 0 && buf[dir_len] != '/')) return NULL;
  return strdup(buf);
}

static void record(uint8_t op, const char *path, size_t path_len, uint64_t a, uint64_t b,
                   const struct iovec *data, int data_n) {
  uint32_t n = (uint32_t)path_len;
  struct iovec iov[3 + 64];
  iov[0].iov_base = &op;
  iov[0].iov_len = 1;
  iov[1].iov_base = &n;
  iov[1].iov_len = 4;
  iov[2].iov_base = (void *)path;
  iov[2].iov_len = path_len;
  uint64_t ab[2] = {a, b};
  iov[3].iov_base = ab;
  iov[3].iov_len = 16;
  int cnt = 4;
  for (int i = 0; i < data_n && cnt < 3 + 64; i++) iov[cnt++] = data[i];
  pthread_mutex_lock(&lock);
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  ssize_t done = real_writev(log_fd, iov, cnt);
  pthread_mutex_unlock(&lock);
  if (done != (ssize_t)total) {
    /* A log that misses a record would make the replay lie: stop at once. */
    static const char msg[] = "power-loss shim: cannot write the log\n";
    real_write(2, msg, sizeof msg - 1);
    abort();
  }
}

static const char *path_of(int fd) {
  return (fd >= 0 && fd < MAX_FD) ? paths[fd] : NULL;
}

static int after_open(int fd, char *path, int flags, int existed) {
  if (fd < 0 || !path) {
    free(path);
    return fd;
  }
  if (fd >= MAX_FD) {
    free(path);
    return fd;
  }
  free(paths[fd]);
  paths[fd] = path;
  if ((flags & O_CREAT) && !existed) record(1, path, strlen(path), 0, 0, NULL, 0);
  if ((flags & O_TRUNC) && existed) record(3, path, strlen(path), 0, 0, NULL, 0);
  return fd;
}

static int exists(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0;
}

#define OPEN_BODY(call)                      \
  init();                                     \
  mode_t mode = 0;                            \
  if (flags & (O_CREAT | O_TMPFILE)) {        \
    va_list ap;                               \
    va_start(ap, flags);                      \
    mode = va_arg(ap, mode_t);                \
    va_end(ap);                               \
  }                                           \
  char *abs = watched(AT, path);              \
  int existed = abs ? exists(abs) : 0;        \
  int fd = call;                              \
  return after_open(fd, abs, flags, existed);

int open(const char *path, int flags, ...) {
#define AT AT_FDCWD
  OPEN_BODY(real_open(path, flags, mode))
#undef AT
}
int open64(const char *path, int flags, ...) {
#define AT AT_FDCWD
  OPEN_BODY(real_open64(path, flags, mode))
#undef AT
}
int openat(int at, const char *path, int flags, ...) {
#define AT at
  OPEN_BODY(real_openat(at, path, flags, mode))
#undef AT
}
int openat64(int at, const char *path, int flags, ...) {
#define AT at
  OPEN_BODY(real_openat64(at, path, flags, mode))
#undef AT
}

int close(int fd) {
  init();
  if (fd >= 0 && fd < MAX_FD && paths[fd]) {
    free(paths[fd]);
    paths[fd] = NULL;
  }
  return real_close(fd);
}

static void wrote(int fd, off_t off, const struct iovec *iov, int n, ssize_t done) {
  const char *p = path_of(fd);
  if (!p || done <= 0) return;
  /* Only the bytes actually written. */
  struct iovec part[64];
  int m = 0;
  size_t left = (size_t)done;
  for (int i = 0; i < n && left > 0 && m < 64; i++) {
    size_t take = iov[i].iov_len < left ? iov[i].iov_len : left;
    part[m].iov_base = iov[i].iov_base;
    part[m].iov_len = take;
    m++;
    left -= take;
  }
  record(2, p, strlen(p), (uint64_t)off, (uint64_t)done, part, m);
}

ssize_t write(int fd, const void *buf, size_t count) {
  init();
  const char *p = path_of(fd);
  off_t off = p ? lseek(fd, 0, SEEK_CUR) : 0;
  ssize_t done = real_write(fd, buf, count);
  if (p) {
    /* O_APPEND writes land at the end: ask where the file pointer ended up. */
    if (fcntl(fd, F_GETFL) & O_APPEND) off = lseek(fd, 0, SEEK_CUR) - (done > 0 ? done : 0);
    struct iovec v = {(void *)buf, count};
    wrote(fd, off, &v, 1, done);
  }
  return done;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off) {
  init();
  ssize_t done = real_pwrite(fd, buf, count, off);
  struct iovec v = {(void *)buf, count};
  wrote(fd, off, &v, 1, done);
  return done;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off) {
  init();
  ssize_t done = real_pwrite64(fd, buf, count, off);
  struct iovec v = {(void *)buf, count};
  wrote(fd, off, &v, 1, done);
  return done;
}

ssize_t writev(int fd, const struct iovec *iov, int n) {
  init();
  const char *p = path_of(fd);
  off_t off = p ? lseek(fd, 0, SEEK_CUR) : 0;
  ssize_t done = real_writev(fd, iov, n);
  wrote(fd, off, iov, n, done);
  return done;
}

static int truncated(int fd, off_t size, int rc) {
  const char *p = path_of(fd);
  if (p && rc == 0) record(3, p, strlen(p), (uint64_t)size, 0, NULL, 0);
  return rc;
}

int ftruncate(int fd, off_t size) {
  init();
  return truncated(fd, size, real_ftruncate(fd, size));
}

int ftruncate64(int fd, off_t size) {
  init();
  return truncated(fd, size, real_ftruncate64(fd, size));
}

static int synced(int fd, int rc) {
  const char *p = path_of(fd);
  if (p && rc == 0) {
    struct stat st;
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    record(is_dir ? 5 : 4, p, strlen(p), 0, 0, NULL, 0);
  }
  return rc;
}

int fsync(int fd) {
  init();
  return synced(fd, real_fsync(fd));
}

int fdatasync(int fd) {
  init();
  return synced(fd, real_fdatasync(fd));
}

int unlink(const char *path) {
  init();
  char *abs = watched(AT_FDCWD, path);
  int rc = real_unlink(path);
  if (abs && rc == 0) record(6, abs, strlen(abs), 0, 0, NULL, 0);
  free(abs);
  return rc;
}

int unlinkat(int at, const char *path, int flags) {
  init();
  char *abs = watched(at, path);
  int rc = real_unlinkat(at, path, flags);
  if (abs && rc == 0 && !(flags & AT_REMOVEDIR)) record(6, abs, strlen(abs), 0, 0, NULL, 0);
  free(abs);
  return rc;
}

int rename(const char *from, const char *to) {
  init();
  char *a = watched(AT_FDCWD, from);
  char *b = watched(AT_FDCWD, to);
  int rc = real_rename(from, to);
  if (a && b && rc == 0) {
    size_t la = strlen(a), lb = strlen(b);
    char *both = malloc(la + 1 + lb);
    if (both) {
      memcpy(both, a, la + 1);
      memcpy(both + la + 1, b, lb);
      record(7, both, la + 1 + lb, 0, 0, NULL, 0);
      free(both);
    }
  }
  free(a);
  free(b);
  return rc;
}
