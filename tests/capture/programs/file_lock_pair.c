/* Two processes each lock one file and then wait for the other's: with flock(2) ("flock") or
   open-file-description locks ("ofd"), for which the kernel detects no deadlock. With "sleeper",
   the first process takes its lock and sleeps forever instead; the second waits behind it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static int ofd;

static void lock(int fd) {
    if (ofd) {
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fcntl(fd, F_OFD_SETLKW, &fl);
    } else {
        flock(fd, LOCK_EX);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    ofd = strcmp(argv[1], "ofd") == 0;
    int sleeper = strcmp(argv[1], "sleeper") == 0;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/a.lock", argv[2]);
    snprintf(b, sizeof b, "%s/b.lock", argv[2]);
    pid_t pid = fork();
    int fa = open(a, O_RDWR | O_CREAT, 0600), fb = open(b, O_RDWR | O_CREAT, 0600);
    if (pid == 0) {  /* the child: b, then a */
        lock(fb);
        usleep(300000);
        lock(fa);
        return 0;
    }
    lock(fa);
    usleep(300000);
    if (sleeper)
        for (;;) sleep(1);
    lock(fb);
    waitpid(pid, 0, 0);
    return 0;
}
