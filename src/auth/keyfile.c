/* Secret files: the JWT signing keys and the HS256 secret. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "base/alloc.h"

#define KEYFILE_MAX (64 * 1024)

int auth_secret_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s may be read or written by group or others (mode %03o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
        close(fd);
        return -1;
    }
    if ((size_t)st.st_size > max) {
        snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
        close(fd);
        return -1;
    }
    char *buf = eh_malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return -1;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

void auth_secret_free(char *p, size_t len) {
    if (!p) return;
    sodium_memzero(p, len);
    eh_free(p);
}

static void default_path(const ehub_config *cfg, char *out, size_t n) {
    if (cfg->jwt_key_file[0]) snprintf(out, n, "%s", cfg->jwt_key_file);
    else snprintf(out, n, "%s/jwt.keys", cfg->data_dir);
}

static int new_key_line(char line[80], char kid[JWT_KID_LEN]) {
    unsigned char seed[32];
    randombytes_buf(seed, sizeof seed);
    sodium_bin2hex(line, 65, seed, sizeof seed);
    jwt_keyset *ks = jwt_keyset_new();
    int rc = ks && jwt_keyset_add_seed(ks, seed) == 0 ? 0 : -1;
    if (!rc) snprintf(kid, JWT_KID_LEN, "%s", jwt_keyset_kid(ks, 0));
    jwt_keyset_free(ks);
    sodium_memzero(seed, sizeof seed);
    strcat(line, "\n");
    return rc;
}

/* Writes text to path through a 0600 temporary file and a rename. */
static int write_secret(const char *path, const char *text, size_t len, char *err, size_t errlen) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t n = 0;
    while (n < len) {
        ssize_t k = write(fd, text + n, len - n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
    }
    int ok = n == len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

jwt_keyset *auth_jwt_keys_load(const ehub_config *cfg, char *err, size_t errlen) {
    err[0] = 0;
    char path[1100];
    default_path(cfg, path, sizeof path);
    if (!cfg->jwt_key_file[0] && access(path, F_OK) != 0) {
        /* First start: make a key. */
        if (mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", cfg->data_dir, strerror(errno));
            return NULL;
        }
        char line[80], kid[JWT_KID_LEN];
        if (new_key_line(line, kid) ||
            write_secret(path, line, strlen(line), err, errlen)) {
            sodium_memzero(line, sizeof line);
            if (!err[0]) snprintf(err, errlen, "cannot generate a key");
            return NULL;
        }
        sodium_memzero(line, sizeof line);
    }
    char *text;
    size_t len;
    if (auth_secret_read(path, KEYFILE_MAX, &text, &len, err, errlen)) return NULL;
    jwt_keyset *ks = jwt_keyset_new();
    if (!ks) {
        auth_secret_free(text, len);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char why[200] = "";
    int n = jwt_keyset_load_text(ks, text, len, why, sizeof why);
    auth_secret_free(text, len);
    if (n <= 0) {
        snprintf(err, errlen, "%s: %s", path, n == 0 ? "no key in the file" : why);
        jwt_keyset_free(ks);
        return NULL;
    }
    if (cfg->jwt_hs256_secret_file[0]) {
        if (auth_secret_read(cfg->jwt_hs256_secret_file, 256, &text, &len, err, errlen)) {
            jwt_keyset_free(ks);
            return NULL;
        }
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
        int rc = jwt_keyset_set_hs256(ks, text, len);
        auth_secret_free(text, len);
        if (rc) {
            snprintf(err, errlen, "%s: the HS256 secret must be %d-256 bytes", cfg->jwt_hs256_secret_file,
                     JWT_HS256_MIN_SECRET);
            jwt_keyset_free(ks);
            return NULL;
        }
    }
    return ks;
}

int auth_jwt_rotate(const ehub_config *cfg, int keep, char kid[JWT_KID_LEN], int *nkeys, char *err, size_t errlen) {
    char path[1100];
    default_path(cfg, path, sizeof path);
    char *old = NULL;
    size_t oldlen = 0;
    if (access(path, F_OK) == 0 && auth_secret_read(path, KEYFILE_MAX, &old, &oldlen, err, errlen)) return -1;
    if (!old && cfg->jwt_key_file[0]) {
        snprintf(err, errlen, "%s does not exist", path);
        return -1;
    }
    if (!old && mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    /* Keep the old file's keys as they were written (hex, base64url or
     * PEM): check it parses, then count keys by re-parsing prefixes. */
    char line[80];
    if (new_key_line(line, kid)) {
        auth_secret_free(old, oldlen);
        snprintf(err, errlen, "cannot generate a key");
        return -1;
    }
    size_t cap = strlen(line) + oldlen + 1;
    char *text = eh_malloc(cap);
    if (!text) {
        auth_secret_free(old, oldlen);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = (size_t)snprintf(text, cap, "%s", line);
    sodium_memzero(line, sizeof line);
    /* Append old keys one entry at a time until `keep` keys in all. */
    int count = 1;
    size_t i = 0;
    while (old && i < oldlen && count < keep) {
        size_t e = i;
        while (e < oldlen && old[e] != '\n') e++;
        size_t stop = e;
        if (e - i >= 11 && !strncmp(old + i, "-----BEGIN ", 11)) {
            char *end = strstr(old + e, "-----END ");
            if (!end) break;
            stop = (size_t)(end - old);
            while (stop < oldlen && old[stop] != '\n') stop++;
        }
        jwt_keyset *probe = jwt_keyset_new();
        char why[160];
        int n = probe ? jwt_keyset_load_text(probe, old + i, stop - i, why, sizeof why) : -1;
        jwt_keyset_free(probe);
        if (n > 0) {
            memcpy(text + len, old + i, stop - i);
            len += stop - i;
            text[len++] = '\n';
            count++;
        }
        i = stop + 1;
    }
    auth_secret_free(old, oldlen);
    /* The result must load. */
    jwt_keyset *check = jwt_keyset_new();
    char why[160] = "";
    int n = check ? jwt_keyset_load_text(check, text, len, why, sizeof why) : -1;
    jwt_keyset_free(check);
    int rc = -1;
    if (n != count) snprintf(err, errlen, "the rotated key file would not load: %s", why);
    else rc = write_secret(path, text, len, err, errlen);
    auth_secret_free(text, cap);
    if (!rc) *nkeys = count;
    return rc;
}
