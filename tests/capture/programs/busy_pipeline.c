/* A healthy producer: writes lines forever at a steady pace (used as `producer | consumer`). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    for (unsigned long i = 0;; i++) {
        printf("line %lu\n", i);
        fflush(stdout);
        if (i % 64 == 0) usleep(1000);
    }
}
