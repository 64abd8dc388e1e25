/* The seed 002 shape: two single-threaded processes, each writing a large reply into a pipe
 * the other reads, neither reading until its own write is done. Both pipes fill; both block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

static void talk(int out, const char *name) {
    static char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    for (int i = 0; i < 1024; i++) {  /* 4 MiB: far more than a pipe holds */
        if (write(out, chunk, sizeof chunk) < 0) exit(1);
    }
}

int main(void) {
    int to_worker[2], to_server[2];
    if (pipe(to_worker) || pipe(to_server)) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(to_worker[1]);
        close(to_server[0]);
        talk(to_server[1], "worker");
        return 0;
    }
    close(to_worker[0]);
    close(to_server[1]);
    printf("%d %d\n", getpid(), pid);
    fflush(stdout);
    talk(to_worker[1], "server");
    return 0;
}
