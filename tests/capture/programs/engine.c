/* A single-threaded engine: reads a 512-byte request, writes an 8 KiB notification. */
#include <unistd.h>
#include <string.h>
int main(void) {
    char req[512], note[8192];
    memset(note, 'n', sizeof note);
    while (read(0, req, sizeof req) > 0) {
        if (write(1, note, sizeof note) < 0) return 1;
    }
    return 0;
}
