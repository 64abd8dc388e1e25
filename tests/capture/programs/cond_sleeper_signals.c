/* A correct program caught mid-wait: main waits on a condition variable that a thread now
 * sleeping (nanosleep) will signal when it wakes. From one look nobody can tell it from a
 * stall: the sleeper may be the signaller. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready = 0;

static void *slow(void *arg) {
    sleep(600);
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return arg;
}

int main(void) {
    pthread_t t;
    pthread_create(&t, NULL, slow, NULL);
    pthread_mutex_lock(&mu);
    while (!ready) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    puts("done");
    return 0;
}
