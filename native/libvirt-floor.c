/*
 * libvirt-floor: the "raw libvirt floor" benchmark.
 *
 * Measures the cost of raw libvirt C API call loops, so that the managed C#
 * wrapper (BenchmarkDotNet suite) can be compared with it as a ratio
 * managed/C. A script joins the two result sets by LOOP NAME, so the loop
 * names and what each loop does are a contract: the C# side must issue
 * exactly the same libvirt calls, in the same order, with the same arguments.
 *
 * Connection / setup (done once, not timed):
 *   - virInitialize(); virSetErrorFunc(NULL, <no-op handler>).
 *   - conn = virConnectOpen(URI), URI default "test:///default" (libvirt's
 *     built-in in-process test driver, no daemon).
 *   - dom = virDomainLookupByName(conn, "test") -- the running domain the test
 *     driver ships with; its UUID string is read once with
 *     virDomainGetUUIDString (6695eb01-f6a4-8304-79aa-97f2502e193f for
 *     test:///default). `dom` stays referenced for the whole run and must be
 *     in state VIR_DOMAIN_RUNNING.
 *
 * Loops, in this order (one "iteration" = the body listed):
 *   1. lookup_getstate
 *        d = virDomainLookupByUUIDString(conn, uuid_of_"test");
 *        virDomainGetState(d, &state, &reason, 0);
 *        virDomainFree(d);
 *   2. suspend_resume
 *        virDomainSuspend(dom); virDomainResume(dom);      (dom = "test")
 *   3. define_undefine
 *        d = virDomainDefineXML(conn, DEFINE_XML);           (see below)
 *        virDomainUndefine(d);
 *        virDomainFree(d);
 *      DEFINE_XML is exactly:
 *        <domain type='test'><name>floor-define</name>
 *        <uuid>0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0</uuid>
 *        <memory>8192</memory><os><type>hvm</type></os></domain>
 *      (no whitespace/newlines between elements; see DEFINE_XML below).
 *   4. list_all_<D>   (D = --domains, default 1000 -> "list_all_1000")
 *        n = virConnectListAllDomains(conn, &doms, 0);
 *        for i in 0..n-1: virDomainFree(doms[i]);
 *        free(doms);
 *      Untimed setup right before this loop: D extra persistent domains are
 *      defined with virDomainDefineXML, named "floor-list-%04d" (i = 0..D-1,
 *      XML as DEFINE_XML with that name and no <uuid>, so the driver
 *      generates one), and those with even i are started with
 *      virDomainCreate (ceil(D/2) running, floor(D/2) shut off). So the list
 *      call returns D + 1 domains ("test" included) on test:///default.
 *      Untimed teardown right after this loop: the started ones are
 *      virDomainDestroy'ed, all D are virDomainUndefine'd and freed, so loops
 *      1-3 and 5 run with only the stock "test" domain present.
 *   5. get_xml_desc
 *        char *x = virDomainGetXMLDesc(dom, 0); free(x);    (dom = "test")
 *
 * Timing: per loop, W = max(1, I/10) untimed warm-up iterations, then 5 timed
 * rounds of I iterations each, timed with clock_gettime(CLOCK_MONOTONIC)
 * around the whole round. ns_per_op = MEDIAN over the 5 rounds of
 * (round_ns / I). With N = --iterations (default 50000):
 *   I = N for lookup_getstate, suspend_resume, get_xml_desc;
 *   I = max(1, N/10) for define_undefine (~25x slower per op);
 *   I = max(1, N/100) for list_all_<D> (each call creates D+1 virDomain
 *   objects). The default run takes ~7 s on a 2-core machine.
 *
 * Every libvirt return value is checked; on error the program prints
 * virGetLastErrorMessage() to stderr and exits 1.
 *
 * Output (stdout, TSV): header "loop\titerations\tns_per_op", then one line
 * per loop in the order above; "iterations" is I for that loop (iterations
 * per timed round), ns_per_op is printed with one decimal.
 * Diagnostics go to stderr.
 *
 * Usage: libvirt-floor [--uri URI] [--iterations N] [--domains D]
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define ROUNDS 5
#define DEFAULT_URI "test:///default"
#define DEFAULT_ITERATIONS 50000L
#define DEFAULT_DOMAINS 1000L
/* Per-loop divisors of --iterations (see header comment). */
#define DEFINE_SCALE 10L
#define LIST_SCALE 100L
#define BASE_DOMAIN_NAME "test"

#define DEFINE_XML                                                         \
    "<domain type='test'><name>floor-define</name>"                        \
    "<uuid>0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0</uuid>"                    \
    "<memory>8192</memory><os><type>hvm</type></os></domain>"

#define LIST_XML_FMT                                                       \
    "<domain type='test'><name>floor-list-%04ld</name>"                    \
    "<memory>8192</memory><os><type>hvm</type></os></domain>"

struct ctx {
    virConnectPtr conn;
    virDomainPtr dom;                 /* "test", running */
    char uuid[VIR_UUID_STRING_BUFLEN];
    virDomainPtr *extra;              /* list_all setup */
    long n_extra;
    int expect_listed;
};

static void noop_error_handler(void *userdata, virErrorPtr err)
{
    (void)userdata;
    (void)err;
}

static void die(const char *what)
{
    const char *msg = virGetLastErrorMessage();
    fprintf(stderr, "libvirt-floor: %s failed: %s\n", what,
            msg ? msg : "(no libvirt error message)");
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("libvirt-floor: clock_gettime");
        exit(1);
    }
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- loop bodies: one call = one iteration ---------------------------- */

static void body_lookup_getstate(struct ctx *c)
{
    int state, reason;
    virDomainPtr d = virDomainLookupByUUIDString(c->conn, c->uuid);
    if (!d)
        die("virDomainLookupByUUIDString");
    if (virDomainGetState(d, &state, &reason, 0) < 0)
        die("virDomainGetState");
    if (virDomainFree(d) < 0)
        die("virDomainFree");
}

static void body_suspend_resume(struct ctx *c)
{
    if (virDomainSuspend(c->dom) < 0)
        die("virDomainSuspend");
    if (virDomainResume(c->dom) < 0)
        die("virDomainResume");
}

static void body_define_undefine(struct ctx *c)
{
    virDomainPtr d = virDomainDefineXML(c->conn, DEFINE_XML);
    if (!d)
        die("virDomainDefineXML");
    if (virDomainUndefine(d) < 0)
        die("virDomainUndefine");
    if (virDomainFree(d) < 0)
        die("virDomainFree");
}

static void body_list_all(struct ctx *c)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c->conn, &doms, 0);
    if (n < 0)
        die("virConnectListAllDomains");
    for (int i = 0; i < n; i++)
        if (virDomainFree(doms[i]) < 0)
            die("virDomainFree");
    free(doms);
}

static void body_get_xml_desc(struct ctx *c)
{
    char *xml = virDomainGetXMLDesc(c->dom, 0);
    if (!xml)
        die("virDomainGetXMLDesc");
    free(xml);
}

/* ---- harness ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_loop(struct ctx *c, const char *name, long iters,
                     void (*body)(struct ctx *))
{
    long warmup = iters / 10 > 0 ? iters / 10 : 1;
    double per_op[ROUNDS];

    for (long i = 0; i < warmup; i++)
        body(c);

    for (int r = 0; r < ROUNDS; r++) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < iters; i++)
            body(c);
        uint64_t t1 = now_ns();
        per_op[r] = (double)(t1 - t0) / (double)iters;
    }

    qsort(per_op, ROUNDS, sizeof(per_op[0]), cmp_double);
    fprintf(stderr, "libvirt-floor: %-16s iters=%-7ld warmup=%-6ld "
            "rounds ns/op min=%.1f median=%.1f max=%.1f\n",
            name, iters, warmup, per_op[0], per_op[ROUNDS / 2],
            per_op[ROUNDS - 1]);
    printf("%s\t%ld\t%.1f\n", name, iters, per_op[ROUNDS / 2]);
    fflush(stdout);
}

static void setup_extra_domains(struct ctx *c)
{
    char xml[512];
    uint64_t t0 = now_ns();

    c->extra = calloc((size_t)c->n_extra, sizeof(*c->extra));
    if (!c->extra && c->n_extra > 0) {
        fprintf(stderr, "libvirt-floor: out of memory\n");
        exit(1);
    }
    for (long i = 0; i < c->n_extra; i++) {
        snprintf(xml, sizeof(xml), LIST_XML_FMT, i);
        c->extra[i] = virDomainDefineXML(c->conn, xml);
        if (!c->extra[i])
            die("virDomainDefineXML (list setup)");
        if (i % 2 == 0 && virDomainCreate(c->extra[i]) < 0)
            die("virDomainCreate (list setup)");
    }
    uint64_t t1 = now_ns();

    int n = virConnectNumOfDomains(c->conn);
    if (n < 0)
        die("virConnectNumOfDomains");
    int m = virConnectNumOfDefinedDomains(c->conn);
    if (m < 0)
        die("virConnectNumOfDefinedDomains");
    c->expect_listed = n + m;
    fprintf(stderr, "libvirt-floor: defined %ld extra domains (%ld started) "
            "in %.1f ms; now %d active + %d inactive\n",
            c->n_extra, (c->n_extra + 1) / 2, (double)(t1 - t0) / 1e6, n, m);

    virDomainPtr *doms = NULL;
    int l = virConnectListAllDomains(c->conn, &doms, 0);
    if (l < 0)
        die("virConnectListAllDomains");
    for (int i = 0; i < l; i++)
        if (virDomainFree(doms[i]) < 0)
            die("virDomainFree");
    free(doms);
    if (l != c->expect_listed) {
        fprintf(stderr, "libvirt-floor: virConnectListAllDomains returned %d "
                "domains, expected %d\n", l, c->expect_listed);
        exit(1);
    }
}

static void teardown_extra_domains(struct ctx *c)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < c->n_extra; i++) {
        if (i % 2 == 0 && virDomainDestroy(c->extra[i]) < 0)
            die("virDomainDestroy (list teardown)");
        if (virDomainUndefine(c->extra[i]) < 0)
            die("virDomainUndefine (list teardown)");
        if (virDomainFree(c->extra[i]) < 0)
            die("virDomainFree (list teardown)");
    }
    free(c->extra);
    c->extra = NULL;
    fprintf(stderr, "libvirt-floor: removed %ld extra domains in %.1f ms\n",
            c->n_extra, (double)(now_ns() - t0) / 1e6);
}

static long parse_positive(const char *opt, const char *s, int allow_zero)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < (allow_zero ? 0 : 1) ||
        v > 100000000L) {
        fprintf(stderr, "libvirt-floor: invalid value for %s: '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: libvirt-floor [--uri URI] [--iterations N] "
            "[--domains D]\n"
            "  --uri URI        libvirt URI (default %s)\n"
            "  --iterations N   iterations per timed round (default %ld;\n"
            "                   define_undefine uses max(1, N/%ld),\n"
            "                   list_all_<D> uses max(1, N/%ld))\n"
            "  --domains D      extra domains for list_all_<D> (default %ld)\n",
            DEFAULT_URI, DEFAULT_ITERATIONS, DEFINE_SCALE, LIST_SCALE,
            DEFAULT_DOMAINS);
}

int main(int argc, char **argv)
{
    const char *uri = DEFAULT_URI;
    long iterations = DEFAULT_ITERATIONS;
    long domains = DEFAULT_DOMAINS;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--uri"))
            uri = argv[++i];
        else if (!strcmp(a, "--iterations"))
            iterations = parse_positive(a, argv[++i], 0);
        else if (!strcmp(a, "--domains"))
            domains = parse_positive(a, argv[++i], 1);
        else {
            usage(stderr);
            return 2;
        }
    }

    if (virInitialize() < 0)
        die("virInitialize");
    virSetErrorFunc(NULL, noop_error_handler);

    struct ctx c;
    memset(&c, 0, sizeof(c));
    c.n_extra = domains;

    uint64_t t_start = now_ns();
    c.conn = virConnectOpen(uri);
    if (!c.conn)
        die("virConnectOpen");
    c.dom = virDomainLookupByName(c.conn, BASE_DOMAIN_NAME);
    if (!c.dom)
        die("virDomainLookupByName(\"" BASE_DOMAIN_NAME "\")");
    if (virDomainGetUUIDString(c.dom, c.uuid) < 0)
        die("virDomainGetUUIDString");
    int state, reason;
    if (virDomainGetState(c.dom, &state, &reason, 0) < 0)
        die("virDomainGetState");
    if (state != VIR_DOMAIN_RUNNING) {
        fprintf(stderr, "libvirt-floor: domain '%s' is not running "
                "(state %d)\n", BASE_DOMAIN_NAME, state);
        return 1;
    }
    fprintf(stderr, "libvirt-floor: libvirt %lu, uri %s, domain '%s' uuid %s\n",
            (unsigned long)LIBVIR_VERSION_NUMBER, uri, BASE_DOMAIN_NAME, c.uuid);

    long define_iters = iterations / DEFINE_SCALE > 0 ?
                        iterations / DEFINE_SCALE : 1;
    long list_iters = iterations / LIST_SCALE > 0 ? iterations / LIST_SCALE : 1;
    char list_name[64];
    snprintf(list_name, sizeof(list_name), "list_all_%ld", domains);

    printf("loop\titerations\tns_per_op\n");
    fflush(stdout);

    run_loop(&c, "lookup_getstate", iterations, body_lookup_getstate);
    run_loop(&c, "suspend_resume", iterations, body_suspend_resume);
    run_loop(&c, "define_undefine", define_iters, body_define_undefine);
    setup_extra_domains(&c);
    run_loop(&c, list_name, list_iters, body_list_all);
    teardown_extra_domains(&c);
    run_loop(&c, "get_xml_desc", iterations, body_get_xml_desc);

    if (virDomainFree(c.dom) < 0)
        die("virDomainFree");
    if (virConnectClose(c.conn) < 0)
        die("virConnectClose");
    fprintf(stderr, "libvirt-floor: total %.2f s\n",
            (double)(now_ns() - t_start) / 1e9);
    return 0;
}
