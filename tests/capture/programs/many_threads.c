/* N threads (argv[1], default 1000): half wait on a condition variable nobody signals, half in
 * a read of a pipe only they could write; main joins the first. A big process for the capture
 * benchmark, stuck for good (a stall). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int fds[2];

static void *on_cond(void *arg) {
    pthread_mutex_lock(&m);
    pthread_cond_wait(&go, &m);
    pthread_mutex_unlock(&m);
    return arg;
}

static void *on_pipe(void *arg) {
    char c;
    if (read(fds[0], &c, 1) < 0) return NULL;
    return arg;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_attr_t attr;
    if (pipe(fds)) return 1;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], &attr, i % 2 ? on_pipe : on_cond, NULL);
    printf("%d\n", getpid());
    fflush(stdout);
    pthread_join(t[0], NULL);
    return 0;
}
