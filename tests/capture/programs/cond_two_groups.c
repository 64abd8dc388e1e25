/* Two workers wait on one condition variable for a job; the dispatcher signals once before it
   posts any (a bug), then returns on an error path. The woken worker finds no job and waits
   again. glibc keeps waiters in two groups, each asleep on its own futex word inside the
   pthread_cond_t: the one signal moved both workers into the first group and woke one, which
   now waits in the second. With argv[1] "input" the dispatcher then waits for a line on stdin
   (from outside the process) and posts the job: nothing is stuck. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_posted = PTHREAD_COND_INITIALIZER;
static int jobs = 0;
static int waiting = 0;
static int posts = 0;

static void *worker(void *arg) {
    pthread_mutex_lock(&mu);
    waiting++;
    while (jobs == 0) pthread_cond_wait(&job_posted, &mu);
    jobs--;
    pthread_mutex_unlock(&mu);
    return arg;
}

static void *dispatcher(void *arg) {
    for (;;) {  /* until both workers wait */
        pthread_mutex_lock(&mu);
        int both = waiting == 2;
        if (both) pthread_cond_signal(&job_posted);  /* no job posted yet: the bug */
        pthread_mutex_unlock(&mu);
        if (both) break;
        usleep(1000);
    }
    if (!posts) return arg;  /* the error path: never posts */
    char line[64];
    if (fgets(line, sizeof line, stdin) != NULL) {
        pthread_mutex_lock(&mu);
        jobs = 2;
        pthread_cond_broadcast(&job_posted);
        pthread_mutex_unlock(&mu);
    }
    return arg;
}

int main(int argc, char **argv) {
    pthread_t d, w[2];
    posts = argc > 1 && strcmp(argv[1], "input") == 0;
    for (int i = 0; i < 2; i++) pthread_create(&w[i], NULL, worker, NULL);
    pthread_create(&d, NULL, dispatcher, NULL);
    puts("ready");
    fflush(stdout);
    for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
    return 0;
}
