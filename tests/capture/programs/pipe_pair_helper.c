/* pipe_pair's shape, with a helper thread in the worker that waits on a condition variable.
 * With argument "waker", the worker also has a thread that wakes up every 100 ms and could
 * signal the helper, which could then read the pipe: nothing is proven stuck. Without it,
 * the helper can only be woken by the worker's blocked main thread: a deadlock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static int drain_fd = -1, go = 0;

static void *helper(void *arg) {
    char buf[4096];
    pthread_mutex_lock(&m);
    while (!go) pthread_cond_wait(&work, &m);
    pthread_mutex_unlock(&m);
    while (read(drain_fd, buf, sizeof buf) > 0) {}
    return arg;
}

static void *waker(void *arg) {
    for (;;) usleep(100000);  /* could set go and signal `work`; this build never does */
    return arg;
}

static void talk(int out, const char *name) {
    static char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    for (int i = 0; i < 1024; i++)
        if (write(out, chunk, sizeof chunk) < 0) exit(1);
}

int main(int argc, char **argv) {
    int to_worker[2], to_server[2];
    if (pipe(to_worker) || pipe(to_server)) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        pthread_t h, w;
        close(to_worker[1]);
        close(to_server[0]);
        drain_fd = to_worker[0];
        pthread_create(&h, NULL, helper, NULL);
        if (argc > 1 && strcmp(argv[1], "waker") == 0) pthread_create(&w, NULL, waker, NULL);
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
