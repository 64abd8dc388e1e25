/* A writer holds an rwlock and waits for a mutex; the mutex's holder waits to read. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_rwlock_t table = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t journal = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both;

static void *writer(void *arg) {
    pthread_rwlock_wrlock(&table);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&journal);
    return arg;
}

static void *reader(void *arg) {
    pthread_mutex_lock(&journal);
    pthread_barrier_wait(&both);
    pthread_rwlock_rdlock(&table);
    return arg;
}

int main(void) {
    pthread_t w, r;
    pthread_barrier_init(&both, NULL, 2);
    pthread_create(&w, NULL, writer, NULL);
    pthread_create(&r, NULL, reader, NULL);
    printf("%d\n", getpid());
    fflush(stdout);
    pthread_join(w, NULL);
    return 0;
}
