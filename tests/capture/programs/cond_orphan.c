/* A waiter on a condition variable whose only notifier thread has exited without notifying. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static int done = 0;

static void *notifier(void *arg) {
    /* returns early on an error path: never sets done, never signals */
    return arg;
}

static void *waiter(void *arg) {
    pthread_mutex_lock(&m);
    while (!done) pthread_cond_wait(&ready, &m);
    pthread_mutex_unlock(&m);
    return arg;
}

int main(void) {
    pthread_t n, w;
    pthread_create(&n, NULL, notifier, NULL);
    pthread_join(n, NULL);
    pthread_create(&w, NULL, waiter, NULL);
    printf("%d\n", getpid());
    fflush(stdout);
    pthread_join(w, NULL);
    return 0;
}
