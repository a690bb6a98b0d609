/* leads/normalize: phones to E.164, emails, US ZIP codes — table-driven,
 * positive and negative cases, buffer sizes and locale independence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "leads/normalize.h"

typedef struct phone_case {
    const char *in, *country, *want; /* want NULL: NORM_INVALID */
} phone_case;

static const phone_case PHONES[] = {
    /* NANP, the formats leads type */
    {"(916) 555-0123", "US", "+19165550123"},
    {"916.555.0123", "US", "+19165550123"},
    {"916-555-0123", "US", "+19165550123"},
    {"9165550123", "US", "+19165550123"},
    {"1 916 555 0123", "US", "+19165550123"},
    {"1-916-555-0123", "US", "+19165550123"},
    {"+1 916 555 0123", "US", "+19165550123"},
    {"+1 (916) 555-0123", "US", "+19165550123"},
    {"+19165550123", "US", "+19165550123"},
    {"001 916 555 0123", "US", "+19165550123"},
    {"011 1 916 555 0123", "US", "+19165550123"},
    {"tel:+1-916-555-0123", "US", "+19165550123"},
    {"TEL:+1-916-555-0123;ext=12", "US", "+19165550123"},
    {"  (916) 555-0123  ", "US", "+19165550123"},
    {"916/555-0123", "US", "+19165550123"},
    {"(916) 555-0123 x123", "US", "+19165550123"},
    {"916-555-0123x9", "US", "+19165550123"},
    {"916-555-0123 ext. 45", "US", "+19165550123"},
    {"916-555-0123 Ext 45", "US", "+19165550123"},
    {"916-555-0123 extension 45", "US", "+19165550123"},
    {"916-555-0123 #45", "US", "+19165550123"},
    {"(916) 555-0123", NULL, "+19165550123"},       /* NULL means US */
    {"(416) 555-0199", "CA", "+14165550199"},
    {"(416) 555-0199", "ca", "+14165550199"},
    /* international from a US default */
    {"+44 20 7946 0958", "US", "+442079460958"},
    {"+44 (0)20 7946 0958", "US", "+442079460958"},
    {"+44 020 7946 0958", "US", "+442079460958"},
    {"0044 20 7946 0958", "US", "+442079460958"},
    {"011 44 20 7946 0958", "US", "+442079460958"},
    {"+49 30 901820", "US", "+4930901820"},
    {"+39 06 6988 4000", "US", "+390669884000"},   /* Italy keeps the 0 */
    {"+61 2 9374 4000", "US", "+61293744000"},
    {"+52 55 1234 5678", "US", "+525512345678"},
    {"+353 1 234 5678", "US", "+35312345678"},
    {"+86 10 1234 5678", "US", "+861012345678"},    /* not in our table: still fine with +CC */
    /* national numbers of other default countries */
    {"020 7946 0958", "GB", "+442079460958"},
    {"030 901820", "DE", "+4930901820"},
    {"01 23 45 67 89", "FR", "+33123456789"},
    {"(02) 9374 4000", "AU", "+61293744000"},
    {"0011 44 20 7946 0958", "AU", "+442079460958"},
    {"06 6988 4000", "IT", "+390669884000"},
    {"612 345 678", "ES", "+34612345678"},
    {"55 1234 5678", "MX", "+525512345678"},
    {"020 123 4567", "NL", "+31201234567"},
    {"01 234 5678", "IE", "+35312345678"},
    {"+1 916 555 0123", "GB", "+19165550123"},
    /* invalid */
    {"", "US", NULL},
    {"   ", "US", NULL},
    {"tel:", "US", NULL},
    {"555-0123", "US", NULL},                   /* 7 digits */
    {"(016) 555-0123", "US", NULL},             /* area code starts with 0 */
    {"(116) 555-0123", "US", NULL},             /* area code starts with 1 */
    {"(916) 155-0123", "US", NULL},             /* exchange starts with 1 */
    {"(916) 055-0123", "US", NULL},             /* exchange starts with 0 */
    {"916-555-01234", "US", NULL},              /* 11 digits not starting with 1 */
    {"2 916 555 0123", "US", NULL},
    {"+1 916 555 012", "US", NULL},             /* NANP with 9 digits */
    {"+1 916 555 01234", "US", NULL},
    {"+0 916 555 0123", "US", NULL},            /* no country code starts with 0 */
    {"+44 20 79", "US", NULL},                  /* 6 digits */
    {"+44 20 7946 0958 1234 5", "US", NULL},    /* 17 digits */
    {"1-800-FLOWERS", "US", NULL},              /* vanity numbers not supported */
    {"916 555 0123 x", "US", NULL},             /* extension marker without digits */
    {"916 555 0123 x12a", "US", NULL},
    {"916+555+0123", "US", NULL},
    {"++1 916 555 0123", "US", NULL},
    {"916_555_0123", "US", NULL},
    {"916\xc2\xa0" "555 0123", "US", NULL},     /* non-ASCII space */
    {"\xef\xbc\x99\xef\xbc\x91\xef\xbc\x96", "US", NULL}, /* full-width digits */
    {"00", "US", NULL},
    {"0044", "US", NULL},
    {"0 20 79", "GB", NULL},                    /* +44 and 4 digits: too short */
    {"0", "GB", NULL},
    {"000 20 7946 0958", "GB", NULL},
    {"12345678901234567890123", "US", NULL},
};

static void test_phone_table(void **st) {
    char out[NORM_PHONE_MAX];
    size_t fails = 0;
    for (size_t i = 0; i < sizeof PHONES / sizeof PHONES[0]; i++) {
        const phone_case *c = &PHONES[i];
        int rc = norm_phone_e164(c->in, c->country, out, sizeof out);
        int ok = c->want ? (rc == NORM_OK && !strcmp(out, c->want)) : (rc == NORM_INVALID && !out[0]);
        if (!ok) {
            fprintf(stderr, "phone %zu \"%s\" (%s): rc %d out \"%s\", want %s\n", i, c->in,
                    c->country ? c->country : "NULL", rc, out, c->want ? c->want : "INVALID");
            fails++;
        }
    }
    assert_int_equal(fails, 0);
}

static void test_phone_args(void **st) {
    char out[NORM_PHONE_MAX];
    /* +1 with 15 digits is not NANP: the table's 15-digit +1 case must fail. */
    assert_int_equal(norm_phone_e164("+123456789012345", "US", out, sizeof out), NORM_INVALID);
    assert_int_equal(norm_phone_e164("+234567890123456", "US", out, sizeof out), NORM_OK);
    assert_string_equal(out, "+234567890123456");
    assert_int_equal(norm_phone_e164("+2345678901234567", "US", out, sizeof out), NORM_INVALID);
    assert_int_equal(norm_phone_e164("9165550123", "ZZ", out, sizeof out), NORM_BADARG);
    assert_int_equal(norm_phone_e164("9165550123", "USA", out, sizeof out), NORM_BADARG);
    assert_int_equal(norm_phone_e164("9165550123", "", out, sizeof out), NORM_BADARG);
    assert_int_equal(norm_phone_e164(NULL, "US", out, sizeof out), NORM_BADARG);
    assert_int_equal(norm_phone_e164("9165550123", "US", NULL, 0), NORM_BADARG);
    /* exactly enough room, and one byte short */
    char small[13];
    assert_int_equal(norm_phone_e164("9165550123", "US", small, 13), NORM_OK);
    assert_string_equal(small, "+19165550123");
    assert_int_equal(norm_phone_e164("9165550123", "US", small, 12), NORM_NOSPACE);
    assert_string_equal(small, "");
    assert_int_equal(norm_phone_e164("9165550123", "US", small, 0), NORM_NOSPACE);
}

typedef struct email_case {
    const char *in, *want;
} email_case;

static const email_case EMAILS[] = {
    {"jane@example.com", "jane@example.com"},
    {"Jane.Doe@Example.COM", "jane.doe@example.com"},
    {"  jane@example.com\t\r\n", "jane@example.com"},
    {"jane+leads@example.com", "jane+leads@example.com"},
    {"j_d-1@sub.example.co.uk", "j_d-1@sub.example.co.uk"},
    {"o'brien@example.ie", "o'brien@example.ie"},
    {"a!#$%&'*+-/=?^_`{|}~z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com"},
    {"x@ex-ample.io", "x@ex-ample.io"},
    {"x@123.example.com", "x@123.example.com"},
    {"user@xn--bcher-kva.example", "user@xn--bcher-kva.example"},
    {"user@example.XN--P1AI", "user@example.xn--p1ai"},
    {"a@b.co", "a@b.co"},
    /* 64-character local part: the maximum */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com"},
    /* invalid */
    {"", NULL},
    {"   ", NULL},
    {"jane", NULL},
    {"jane@", NULL},
    {"@example.com", NULL},
    {"jane@example", NULL},                /* no dot */
    {"jane@@example.com", NULL},
    {"jane@doe@example.com", NULL},
    {".jane@example.com", NULL},
    {"jane.@example.com", NULL},
    {"ja..ne@example.com", NULL},
    {"ja ne@example.com", NULL},
    {"\"jane\"@example.com", NULL},        /* quoted local parts rejected */
    {"jane@-example.com", NULL},
    {"jane@example-.com", NULL},
    {"jane@example..com", NULL},
    {"jane@.example.com", NULL},
    {"jane@example.com.", NULL},
    {"jane@example.c", NULL},              /* one-letter TLD */
    {"jane@example.c0m", NULL},            /* digits in TLD */
    {"jane@example.xn--", NULL},
    {"jane@exa_mple.com", NULL},
    {"jane@[192.168.0.1]", NULL},
    {"jane@192.168.0.1", NULL},
    {"j\xc3\xa9ne@example.com", NULL},     /* non-ASCII */
    {"jane@ex\xc3\xa4mple.com", NULL},
    {"Jane Doe <jane@example.com>", NULL},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com", NULL}, /* 65 */
    {"jane@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", NULL},      /* 64-char label */
};

static void test_email_table(void **st) {
    char out[NORM_EMAIL_MAX];
    size_t fails = 0;
    for (size_t i = 0; i < sizeof EMAILS / sizeof EMAILS[0]; i++) {
        const email_case *c = &EMAILS[i];
        int rc = norm_email(c->in, out, sizeof out);
        int ok = c->want ? (rc == NORM_OK && !strcmp(out, c->want)) : (rc == NORM_INVALID && !out[0]);
        if (!ok) {
            fprintf(stderr, "email %zu \"%s\": rc %d out \"%s\", want %s\n", i, c->in, rc, out,
                    c->want ? c->want : "INVALID");
            fails++;
        }
    }
    assert_int_equal(fails, 0);
}

static void test_email_lengths(void **st) {
    char in[400], out[NORM_EMAIL_MAX];
    /* A domain of 63-char labels: total address exactly 254, then 255. */
    char label[64];
    memset(label, 'b', 63);
    label[63] = 0;
    /* local(60) + '@' + 63 + '.' + 63 + '.' + 63 + '.' + "com" = 60+1+63*3+3+3 = 256: trim the local */
    snprintf(in, sizeof in, "%.*s@%s.%s.%s.com", 58, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             label, label, label);
    assert_int_equal(strlen(in), 254);
    assert_int_equal(norm_email(in, out, sizeof out), NORM_OK);
    assert_string_equal(out, in);
    snprintf(in, sizeof in, "%.*s@%s.%s.%s.com", 59, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             label, label, label);
    assert_int_equal(strlen(in), 255);
    assert_int_equal(norm_email(in, out, sizeof out), NORM_INVALID);
    /* output buffer too small, and arguments */
    char small[8];
    assert_int_equal(norm_email("jane@example.com", small, sizeof small), NORM_NOSPACE);
    assert_string_equal(small, "");
    assert_int_equal(norm_email(NULL, out, sizeof out), NORM_BADARG);
    assert_int_equal(norm_email("a@b.co", NULL, 0), NORM_BADARG);
}

static void test_zip(void **st) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"95814", "95814"},      {" 95814 ", "95814"},   {"95814-1234", "95814"},
        {"95814 1234", "95814"}, {"958141234", "95814"}, {"02134", "02134"},
        {"00501", "00501"},      {"", NULL},             {"9581", NULL},
        {"958145", NULL},        {"95814-123", NULL},    {"95814-12345", NULL},
        {"95814-abcd", NULL},    {"9581a", NULL},        {"00000", NULL},
        {"00000-1234", NULL},    {"95814_1234", NULL},   {"ninety", NULL},
        {"-95814", NULL},        {"95814-", NULL},
    };
    char out[NORM_ZIP_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = norm_zip_us(cases[i].in, out, sizeof out);
        if (cases[i].want) {
            assert_int_equal(rc, NORM_OK);
            assert_string_equal(out, cases[i].want);
        } else {
            assert_int_equal(rc, NORM_INVALID);
            assert_string_equal(out, "");
        }
    }
    char small[5];
    assert_int_equal(norm_zip_us("95814", small, sizeof small), NORM_NOSPACE);
    assert_int_equal(norm_zip_us(NULL, out, sizeof out), NORM_BADARG);
}

/* The results must not depend on the process locale (Turkish dotless i is
 * the classic trap for lowercasing). */
static void test_locale_independent(void **st) {
    const char *locs[] = {"tr_TR.UTF-8", "de_DE.UTF-8", "C.UTF-8"};
    char out[NORM_EMAIL_MAX];
    for (size_t i = 0; i < 3; i++) {
        setlocale(LC_ALL, locs[i]); /* may fail if not installed: then C stays */
        assert_int_equal(norm_email("JANE.I@EXAMPLE.COM", out, sizeof out), NORM_OK);
        assert_string_equal(out, "jane.i@example.com");
        assert_int_equal(norm_phone_e164("(916) 555-0123", "us", out, sizeof out), NORM_OK);
        assert_string_equal(out, "+19165550123");
    }
    setlocale(LC_ALL, "C");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phone_table),  cmocka_unit_test(test_phone_args),
        cmocka_unit_test(test_email_table),  cmocka_unit_test(test_email_lengths),
        cmocka_unit_test(test_zip),          cmocka_unit_test(test_locale_independent),
    };
    printf("# normalize: %zu phone cases, %zu email cases\n", sizeof PHONES / sizeof PHONES[0],
           sizeof EMAILS / sizeof EMAILS[0]);
    return cmocka_run_group_tests_name("normalize", tests, NULL, NULL);
}
