/* A C program that snapshots its own memory with wpsnap while a writer thread keeps
 * writing it. Usage: snapshot SNAPSHOT_PATH REFERENCE_PATH
 * It writes the snapshot to SNAPSHOT_PATH and, from inside the pause, the region's content at
 * the snapshot instant to REFERENCE_PATH (a raw image), so a checker can compare the two.
 * Exit status: 0 on success, 2 if userfaultfd is unavailable here, 1 on any other failure. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "wpsnap.h"

#define REGION_BYTES (8u << 20)
#define PAGE_BYTES 4096u

struct app {
    unsigned char *region;
    pthread_mutex_t lock; /* held by the writer for each write, and by the pause */
    atomic_int stop;
    const char *reference_path;
    int reference_ok;
};

static void *writer(void *arg) {
    struct app *app = arg;
    unsigned long counter = 0;
    while (!atomic_load(&app->stop)) {
        pthread_mutex_lock(&app->lock);
        size_t page = (counter * 7919u) % (REGION_BYTES / PAGE_BYTES);
        memset(app->region + page * PAGE_BYTES, (int)(counter & 0xff), PAGE_BYTES);
        pthread_mutex_unlock(&app->lock);
        counter++;
    }
    return NULL;
}

/* Stops the writer (it waits on the lock) and records the region as it is at the instant. */
static int pause_writers(void *context) {
    struct app *app = context;
    pthread_mutex_lock(&app->lock);
    FILE *f = fopen(app->reference_path, "wb");
    app->reference_ok = f != NULL && fwrite(app->region, 1, REGION_BYTES, f) == REGION_BYTES;
    if (f != NULL && fclose(f) != 0) app->reference_ok = 0;
    return 0;
}

static void resume_writers(void *context) {
    struct app *app = context;
    pthread_mutex_unlock(&app->lock);
}

static int report(const char *what, WpsnapStatus status) {
    fprintf(stderr, "%s: %s: %s (errno %d)\n", what, wpsnap_status_name((int)status),
            wpsnap_last_error_message(), wpsnap_last_error_errno());
    return status == WPSNAP_ERR_UFFD_UNAVAILABLE ? 2 : 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SNAPSHOT_PATH REFERENCE_PATH\n", argv[0]);
        return 1;
    }
    struct app app = {.stop = 0, .reference_path = argv[2], .reference_ok = 0};
    pthread_mutex_init(&app.lock, NULL);
    app.region = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (app.region == MAP_FAILED) return 1;
    madvise(app.region, REGION_BYTES, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < REGION_BYTES; i += PAGE_BYTES) app.region[i] = (unsigned char)(i / PAGE_BYTES);

    /* An error first: a region that is not page-aligned is refused with a message. */
    WpsnapPrepared *prepared = NULL;
    WpsnapStatus status = wpsnap_prepare_file(app.region + 1, PAGE_BYTES, NULL, argv[1], NULL, &prepared);
    if (status != WPSNAP_ERR_REGION || strlen(wpsnap_last_error_message()) == 0) {
        fprintf(stderr, "an unaligned region was not refused as expected: %s\n", wpsnap_status_name((int)status));
        return 1;
    }
    printf("refused as expected: %s: %s\n", wpsnap_status_name((int)status), wpsnap_last_error_message());

    pthread_t thread;
    if (pthread_create(&thread, NULL, writer, &app) != 0) return 1;

    status = wpsnap_prepare_file(app.region, REGION_BYTES, "anonymous", argv[1], NULL, &prepared);
    if (status != WPSNAP_OK) return report("prepare", status);
    WpsnapRunning *running = NULL;
    status = wpsnap_arm(prepared, pause_writers, resume_writers, &app, &running);
    if (status != WPSNAP_OK) return report("arm", status);
    uint64_t saved = 0, total = 0;
    wpsnap_progress(running, &saved, &total);
    printf("armed: %llu of %llu pages saved so far\n", (unsigned long long)saved, (unsigned long long)total);
    status = wpsnap_finish(running);
    atomic_store(&app.stop, 1);
    pthread_join(thread, NULL);
    if (status != WPSNAP_OK) return report("finish", status);
    if (!app.reference_ok) {
        fprintf(stderr, "could not write the reference image\n");
        return 1;
    }
    printf("snapshot written to %s\n", argv[1]);
    return 0;
}
