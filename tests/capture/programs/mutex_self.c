/* A thread locks a non-recursive mutex it already holds. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

static void refresh(void) {
    pthread_mutex_lock(&m);  /* already held by the caller */
    pthread_mutex_unlock(&m);
}

int main(void) {
    printf("%d\n", getpid());
    fflush(stdout);
    pthread_mutex_lock(&m);
    refresh();
    pthread_mutex_unlock(&m);
    return 0;
}
