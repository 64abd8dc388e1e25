/* Two threads take two mutexes in opposite orders: an AB/BA deadlock. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both;

static void *one(void *arg) {
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&b);
    return arg;
}

static void *two(void *arg) {
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&both);
    pthread_mutex_lock(&a);
    return arg;
}

int main(void) {
    pthread_t t1, t2;
    pthread_barrier_init(&both, NULL, 2);
    pthread_create(&t1, NULL, one, NULL);
    pthread_create(&t2, NULL, two, NULL);
    printf("%d\n", getpid());
    fflush(stdout);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}
