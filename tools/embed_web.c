/* embed_web — turns the dashboard's built files (web/dist) into a C source
 * file, so the binary carries them and serves them from any directory.
 * Usage: embed_web OUT.c [DIR]
 *
 * Every regular file under DIR (the .gz/.br copies the web build writes
 * included, as files of their own) becomes a byte array, and the table
 * `web_dist_files` lists them as {"/path", data, len}, sorted by path so the
 * output is the same whatever order readdir gives. Dot-names, symbolic links
 * and other non-regular files are left out, as src/web's directory loader
 * leaves them out; that loader's rules (allowed path characters, size
 * limits) are applied once more when the table is loaded. Without DIR, or
 * when DIR does not exist, the table is empty: a binary built so answers /
 * with a 404 that says why.
 *
 * OUT.c is rewritten only when its content changes, so make can run this on
 * every build (it notices added and removed files that way) without
 * recompiling anything when web/dist did not change. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 8
#define MAX_FILES 4096

typedef struct {
    char *rel; /* "/assets/app-X.js" */
    char *full;
} entry;

typedef struct {
    entry v[MAX_FILES];
    int n;
} list;

static int walk(list *l, const char *dir, const char *rel, int depth) {
    if (depth > MAX_DEPTH) return 0;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT && depth == 0) {
        fprintf(stderr, "embed_web: %s does not exist: the binary carries no dashboard\n", dir);
        return 0;
    }
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t fl = strlen(dir) + strlen(e->d_name) + 2, rl = strlen(rel) + strlen(e->d_name) + 2;
        char *full = malloc(fl), *r = malloc(rl);
        if (!full || !r) {
            free(full);
            free(r);
            rc = -1;
            break;
        }
        snprintf(full, fl, "%s/%s", dir, e->d_name);
        snprintf(r, rl, "%s/%s", rel, e->d_name);
        struct stat st;
        if (lstat(full, &st)) {
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk(l, full, r, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            if (l->n == MAX_FILES) {
                fprintf(stderr, "embed_web: more than %d files\n", MAX_FILES);
                rc = -1;
            } else {
                l->v[l->n].rel = r;
                l->v[l->n].full = full;
                l->n++;
                continue; /* kept */
            }
        }
        free(full);
        free(r);
    }
    closedir(d);
    return rc;
}

static int cmp(const void *a, const void *b) { return strcmp(((const entry *)a)->rel, ((const entry *)b)->rel); }

/* A C string literal of s: names are checked again at load time, but an odd
 * byte must not break the generated file. */
static void put_cstr(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f || c == '?') fprintf(out, "\\%03o", c); /* '?': no trigraphs */
        else fputc(c, out);
    }
    fputc('"', out);
}

static int emit_file(FILE *out, int i, const char *path, unsigned long *len) {
    FILE *in = fopen(path, "rb");
    if (!in) {
        perror(path);
        return -1;
    }
    fprintf(out, "static const unsigned char f%d[] = {", i);
    unsigned long n = 0;
    int c;
    while ((c = fgetc(in)) != EOF) {
        if (n % 24 == 0) fputs("\n", out);
        fprintf(out, "%d,", c);
        n++;
    }
    int err = ferror(in);
    fclose(in);
    if (err) {
        fprintf(stderr, "embed_web: %s: read error\n", path);
        return -1;
    }
    /* A trailing 0: never counted in len, and keeps an empty file's array
     * legal C. */
    fputs("0};\n", out);
    *len = n;
    return 0;
}

/* 1 if the files differ (or b cannot be read). */
static int differ(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int d = !x || !y;
    while (!d) {
        int c1 = fgetc(x), c2 = fgetc(y);
        if (c1 != c2) d = 1;
        if (c1 == EOF || c2 == EOF) break;
    }
    if (x) fclose(x);
    if (y) fclose(y);
    return d;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: embed_web OUT.c [DIR]\n");
        return 2;
    }
    const char *dir = argc == 3 ? argv[2] : "";
    list *l = calloc(1, sizeof *l);
    if (!l) return 1;
    entry *files = l->v;
    if (dir[0] && walk(l, dir, "", 0)) {
        fprintf(stderr, "embed_web: cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int nfiles = l->n;
    qsort(files, (size_t)nfiles, sizeof files[0], cmp);

    size_t tl = strlen(argv[1]) + 5;
    char *tmp = malloc(tl);
    if (!tmp) return 1;
    snprintf(tmp, tl, "%s.tmp", argv[1]);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        perror(tmp);
        return 1;
    }
    unsigned long *lens = calloc((size_t)nfiles + 1, sizeof *lens);
    if (!lens) return 1;
    unsigned long total = 0;
    fprintf(out, "/* Generated by tools/embed_web.c from %s — do not edit. */\n#include \"web/web.h\"\n",
             dir[0] ? dir : "(nothing)");
    for (int i = 0; i < nfiles; i++) {
        if (emit_file(out, i, files[i].full, &lens[i])) {
            fclose(out);
            remove(tmp);
            return 1;
        }
        total += lens[i];
    }
    /* One extra, empty row: an array of zero elements is not C. */
    fprintf(out, "\nconst web_embedded web_dist_files[] = {\n");
    for (int i = 0; i < nfiles; i++) {
        fputs("    {", out);
        put_cstr(out, files[i].rel);
        fprintf(out, ", f%d, %luUL},\n", i, lens[i]);
    }
    fprintf(out, "    {0, 0, 0}};\nconst unsigned long web_dist_count = %d;\n", nfiles);
    if (fclose(out)) {
        perror(tmp);
        remove(tmp);
        return 1;
    }
    if (differ(tmp, argv[1])) {
        if (rename(tmp, argv[1])) {
            perror(argv[1]);
            remove(tmp);
            return 1;
        }
        printf("embed_web: %s: %d files, %lu bytes from %s\n", argv[1], nfiles, total, dir[0] ? dir : "(nothing)");
    } else {
        remove(tmp);
    }
    for (int i = 0; i < nfiles; i++) {
        free(files[i].rel);
        free(files[i].full);
    }
    free(lens);
    free(tmp);
    free(l);
    return 0;
}
