/* config: each case is an environment and a command line, with the exact error or the settings
 * they must give. Every WERKLAB_* variable is cleared before each case. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

extern char **environ;

static void clear_environment(void)
{
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "WERKLAB_", 8) == 0) {
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof name, "%.*s", (int)n, *e);
                break;
            }
        }
        if (!name[0])
            return;
        assert_int_equal(unsetenv(name), 0);
    }
}

static int clear_setup(void **state)
{
    (void)state;
    clear_environment();
    return 0;
}

#define MAX_ARGS 10
#define MAX_ENV  4

struct config_case {
    const char *name;
    const char *env[MAX_ENV][2];
    char *argv[MAX_ARGS]; /* after "werklabd" (config_load takes char **) */
    const char *err;      /* NULL: success expected */
    /* On success; 0 and NULL are not checked. */
    enum config_command command;
    const char *database_url;
    const char *listen_host;
    unsigned listen_port;
    unsigned threads;
    unsigned body_limit;
    bool no_migrate;
    const char *key_role;
};

#define DBURL "--database-url=postgres:///werklab"

static const struct config_case config_cases[] = {
    /* Commands, help. */
    {"no command is help", .argv = {NULL}, .command = CONFIG_HELP},
    {"--help", .argv = {"--help"}, .command = CONFIG_HELP},
    {"-h", .argv = {"-h"}, .command = CONFIG_HELP},
    {"help command", .argv = {"help"}, .command = CONFIG_HELP},
    {"serve --help needs no database", .argv = {"serve", "--help"}, .command = CONFIG_HELP},
    {"migrate -h", .argv = {"migrate", "-h"}, .command = CONFIG_HELP},
    {"routes needs no database", .argv = {"routes"}, .command = CONFIG_ROUTES},
    {"unknown command", .argv = {"frobnicate"},
     .err = "unknown command 'frobnicate' (see werklabd --help)"},
    {"command is case-sensitive", .argv = {"Serve"},
     .err = "unknown command 'Serve' (see werklabd --help)"},

    /* The database URL: required where a command uses the database. */
    {"serve without database", .argv = {"serve"},
     .err = "no database: set WERKLAB_DATABASE_URL or --database-url"},
    {"migrate without database", .argv = {"migrate"},
     .err = "no database: set WERKLAB_DATABASE_URL or --database-url"},
    {"create-key without database", .argv = {"create-key", "--role", "admin"},
     .err = "no database: set WERKLAB_DATABASE_URL or --database-url"},
    {"empty database URL flag", .argv = {"serve", "--database-url="},
     .err = "no database: set WERKLAB_DATABASE_URL or --database-url"},
    {"empty database URL variable", .env = {{"WERKLAB_DATABASE_URL", ""}}, .argv = {"migrate"},
     .err = "no database: set WERKLAB_DATABASE_URL or --database-url"},
    {"database URL from the environment", .env = {{"WERKLAB_DATABASE_URL", "postgres://env/db"}},
     .argv = {"migrate"}, .command = CONFIG_MIGRATE, .database_url = "postgres://env/db"},
    {"database URL flag over the environment",
     .env = {{"WERKLAB_DATABASE_URL", "postgres://env/db"}},
     .argv = {"migrate", "--database-url", "postgres://flag/db"}, .command = CONFIG_MIGRATE,
     .database_url = "postgres://flag/db"},
    {"--flag=value keeps later =",
     .argv = {"migrate", "--database-url=postgres://u:p@h/db?sslmode=disable&a=b"},
     .command = CONFIG_MIGRATE, .database_url = "postgres://u:p@h/db?sslmode=disable&a=b"},

    /* Numbers: environment, flags over it, both spellings, the last flag wins. */
    {"threads default", .argv = {"serve", DBURL}, .command = CONFIG_SERVE, .threads = 4},
    {"threads from the environment", .env = {{"WERKLAB_THREADS", "8"}}, .argv = {"serve", DBURL},
     .command = CONFIG_SERVE, .threads = 8},
    {"empty variable is the default", .env = {{"WERKLAB_THREADS", ""}}, .argv = {"serve", DBURL},
     .command = CONFIG_SERVE, .threads = 4},
    {"--threads value over the environment", .env = {{"WERKLAB_THREADS", "8"}},
     .argv = {"serve", DBURL, "--threads", "2"}, .command = CONFIG_SERVE, .threads = 2},
    {"--threads=value over the environment", .env = {{"WERKLAB_THREADS", "8"}},
     .argv = {"serve", "--threads=3", DBURL}, .command = CONFIG_SERVE, .threads = 3},
    {"last flag wins",
     .argv = {"serve", DBURL, "--threads=3", "--threads", "5", "--listen", "a:1", "--listen=b:2"},
     .command = CONFIG_SERVE, .threads = 5, .listen_host = "b", .listen_port = 2},
    {"bounds are inclusive", .argv = {"serve", DBURL, "--threads=256", "--body-limit=1024"},
     .command = CONFIG_SERVE, .threads = 256, .body_limit = 1024},
    {"bad number in the environment", .env = {{"WERKLAB_THREADS", "abc"}}, .argv = {"serve", DBURL},
     .err = "WERKLAB_THREADS: 'abc' is not a whole number from 1 to 256"},
    {"zero threads", .argv = {"serve", DBURL, "--threads", "0"},
     .err = "threads: '0' is not a whole number from 1 to 256"},
    {"too many threads", .argv = {"serve", DBURL, "--threads=257"},
     .err = "threads: '257' is not a whole number from 1 to 256"},
    {"negative", .argv = {"serve", DBURL, "--threads=-1"},
     .err = "threads: '-1' is not a whole number from 1 to 256"},
    {"negative zero", .argv = {"serve", DBURL, "--key-cache-ms=-0"},
     .err = "key-cache-ms: '-0' is not a whole number from 0 to 60000"},
    {"fraction", .argv = {"serve", DBURL, "--threads=1.5"},
     .err = "threads: '1.5' is not a whole number from 1 to 256"},
    {"trailing text", .argv = {"serve", DBURL, "--threads=12abc"},
     .err = "threads: '12abc' is not a whole number from 1 to 256"},
    {"empty number", .argv = {"serve", DBURL, "--threads="},
     .err = "threads: '' is not a whole number from 1 to 256"},
    {"overflow", .argv = {"serve", DBURL, "--threads=99999999999999999999999"},
     .err = "threads: '99999999999999999999999' is not a whole number from 1 to 256"},
    {"below minimum", .argv = {"serve", DBURL, "--body-limit", "1023"},
     .err = "body-limit: '1023' is not a whole number from 1024 to 67108864"},
    {"database pipelines: 0 to 16", .argv = {"serve", DBURL, "--db-pipelines=17"},
     .err = "db-pipelines: '17' is not a whole number from 0 to 16"},
    {"database pipelines from the environment", .env = {{"WERKLAB_DB_PIPELINES", "two"}},
     .argv = {"serve", DBURL},
     .err = "WERKLAB_DB_PIPELINES: 'two' is not a whole number from 0 to 16"},
    {"pipes for writes: 0 to 16", .argv = {"serve", DBURL, "--db-write-pipelines=17"},
     .err = "db-write-pipelines: '17' is not a whole number from 0 to 16"},
    {"audit writers: at least one", .env = {{"WERKLAB_AUDIT_WRITERS", "0"}},
     .argv = {"serve", DBURL},
     .err = "WERKLAB_AUDIT_WRITERS: '0' is not a whole number from 1 to 16"},
    {"bad number variable for another setting", .env = {{"WERKLAB_STATEMENT_TIMEOUT_MS", "99"}},
     .argv = {"serve", DBURL},
     .err = "WERKLAB_STATEMENT_TIMEOUT_MS: '99' is not a whole number from 100 to 600000"},
    /* Retention periods have floors: a period of 0 days would be a way to wipe what they keep. */
    {"audit retention below its floor", .argv = {"serve", DBURL, "--retain-audit-days=179"},
     .err = "retain-audit-days: '179' is not a whole number from 180 to 36500"},
    {"audit retention of 0 days", .env = {{"WERKLAB_RETAIN_AUDIT_DAYS", "0"}},
     .argv = {"serve", DBURL},
     .err = "WERKLAB_RETAIN_AUDIT_DAYS: '0' is not a whole number from 180 to 36500"},
    {"inquiry retention below its floor", .env = {{"WERKLAB_RETAIN_INQUIRIES_DAYS", "29"}},
     .argv = {"serve", DBURL},
     .err = "WERKLAB_RETAIN_INQUIRIES_DAYS: '29' is not a whole number from 30 to 36500"},
    {"participant retention below its floor",
     .argv = {"serve", DBURL, "--retain-participants-days", "0"},
     .err = "retain-participants-days: '0' is not a whole number from 30 to 36500"},
    {"retention beyond a century", .argv = {"serve", DBURL, "--retain-participants-days=36501"},
     .err = "retain-participants-days: '36501' is not a whole number from 30 to 36500"},

    /* Option syntax. */
    {"unknown option", .argv = {"serve", DBURL, "--bogus"},
     .err = "unknown option '--bogus' for serve"},
    {"unknown option with value", .argv = {"serve", "--bogus=1", DBURL},
     .err = "unknown option '--bogus' for serve"},
    {"prefix of an option", .argv = {"serve", DBURL, "--thread=2"},
     .err = "unknown option '--thread' for serve"},
    {"option of another command", .argv = {"serve", DBURL, "--role=admin"},
     .err = "unknown option '--role' for serve"},
    {"database option for routes", .argv = {"routes", DBURL},
     .err = "unknown option '--database-url' for routes"},
    {"bare --", .argv = {"serve", DBURL, "--"}, .err = "unknown option '--' for serve"},
    {"single dash", .argv = {"serve", DBURL, "-t"}, .err = "unexpected argument '-t'"},
    {"positional argument", .argv = {"serve", DBURL, "extra"},
     .err = "unexpected argument 'extra'"},
    {"missing value", .argv = {"serve", DBURL, "--threads"},
     .err = "option --threads needs a value"},
    {"flag", .argv = {"serve", DBURL, "--no-migrate"}, .command = CONFIG_SERVE, .no_migrate = true},
    {"flag with value", .argv = {"serve", DBURL, "--no-migrate=yes"},
     .err = "option --no-migrate takes no value"},
    {"create-key options", .argv = {"create-key", DBURL, "--role", "partner", "--name=Partner X"},
     .command = CONFIG_CREATE_KEY, .key_role = "partner"},

    /* listen. */
    {"listen default", .argv = {"serve", DBURL}, .command = CONFIG_SERVE,
     .listen_host = "127.0.0.1", .listen_port = 8080},
    {"listen from the environment", .env = {{"WERKLAB_LISTEN", "0.0.0.0:9000"}},
     .argv = {"serve", DBURL}, .command = CONFIG_SERVE, .listen_host = "0.0.0.0",
     .listen_port = 9000},
    {"listen flag over the environment", .env = {{"WERKLAB_LISTEN", "0.0.0.0:9000"}},
     .argv = {"serve", DBURL, "--listen=[::1]:8081"}, .command = CONFIG_SERVE,
     .listen_host = "[::1]", .listen_port = 8081},
    {"listen IPv6 in brackets", .argv = {"serve", DBURL, "--listen", "[::1]:8080"},
     .command = CONFIG_SERVE, .listen_host = "[::1]", .listen_port = 8080},
    {"listen name", .argv = {"serve", DBURL, "--listen", "localhost:65535"},
     .command = CONFIG_SERVE, .listen_host = "localhost", .listen_port = 65535},
    {"listen 63-byte host",
     .argv = {"serve", DBURL,
              "--listen=h23456789012345678901234567890123456789012345678901234567890123:1"},
     .command = CONFIG_SERVE,
     .listen_host = "h23456789012345678901234567890123456789012345678901234567890123",
     .listen_port = 1},
    {"listen 64-byte host",
     .argv = {"serve", DBURL,
              "--listen=h234567890123456789012345678901234567890123456789012345678901234:1"},
     .err = "listen: 'h234567890123456789012345678901234567890123456789012345678901234:1' is "
            "not host:port"},
    {"listen port only", .argv = {"serve", DBURL, "--listen=8080"},
     .err = "listen: '8080' is not host:port"},
    {"listen no host", .argv = {"serve", DBURL, "--listen=:8080"},
     .err = "listen: ':8080' is not host:port"},
    {"listen no port", .argv = {"serve", DBURL, "--listen=127.0.0.1:"},
     .err = "listen: '127.0.0.1:' is not host:port"},
    {"listen port too large", .argv = {"serve", DBURL, "--listen=127.0.0.1:65536"},
     .err = "listen: '127.0.0.1:65536' is not host:port"},
    {"listen port not a number", .argv = {"serve", DBURL, "--listen=127.0.0.1:http"},
     .err = "listen: '127.0.0.1:http' is not host:port"},
    {"listen port with text", .argv = {"serve", DBURL, "--listen=127.0.0.1:80x"},
     .err = "listen: '127.0.0.1:80x' is not host:port"},
    {"listen negative port", .argv = {"serve", DBURL, "--listen=127.0.0.1:-1"},
     .err = "listen: '127.0.0.1:-1' is not host:port"},
    {"listen IPv6 without port", .argv = {"serve", DBURL, "--listen=[::1]"},
     .err = "listen: '[::1]' is not host:port"},
    {"listen empty", .argv = {"serve", DBURL, "--listen="}, .err = "listen: '' is not host:port"},
    {"listen is only checked for serve", .env = {{"WERKLAB_LISTEN", "nonsense"}},
     .argv = {"migrate", DBURL}, .command = CONFIG_MIGRATE},

    /* Trusted proxies: refused at start, naming the entry (proxies.h has every rule). */
    {"trusted proxy that is a name", .env = {{"WERKLAB_TRUSTED_PROXIES", "10.0.0.1,nginx"}},
     .argv = {"serve", DBURL},
     .err = "trusted-proxies: 'nginx' is not an IPv4 or IPv6 address or network "
            "(address/prefix, e.g. 10.0.0.0/8; no host names or ports)"},
    {"trusted proxy with a port", .argv = {"serve", DBURL, "--trusted-proxies=127.0.0.1:80"},
     .err = "trusted-proxies: '127.0.0.1:80' is not an IPv4 or IPv6 address or network "
            "(address/prefix, e.g. 10.0.0.0/8; no host names or ports)"},
    {"trusted network with bits after its prefix",
     .argv = {"serve", DBURL, "--trusted-proxies", "10.1.0.0/8"},
     .err = "trusted-proxies: '10.1.0.0/8' has bits set after its prefix; write the network's "
            "own address (e.g. 10.0.0.0/8), or the address alone"},
    {"trusted proxies flag over a bad variable", .env = {{"WERKLAB_TRUSTED_PROXIES", "nginx"}},
     .argv = {"serve", DBURL, "--trusted-proxies=10.0.0.0/8"}, .command = CONFIG_SERVE},
    {"trusted proxies are only checked for serve", .env = {{"WERKLAB_TRUSTED_PROXIES", "nginx"}},
     .argv = {"migrate", DBURL}, .command = CONFIG_MIGRATE},
    {"trusted proxies option of serve only", .argv = {"migrate", DBURL, "--trusted-proxies=::1"},
     .err = "unknown option '--trusted-proxies' for migrate"},
};

static void run_case(const struct config_case *tc)
{
    clear_environment();
    for (int i = 0; i < MAX_ENV && tc->env[i][0]; i++)
        assert_int_equal(setenv(tc->env[i][0], tc->env[i][1], 1), 0);
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "werklabd";
    for (int i = 0; i < MAX_ARGS && tc->argv[i]; i++)
        argv[argc++] = tc->argv[i];
    argv[argc] = NULL;

    struct config c;
    char err[512] = "";
    int rc = config_load(&c, argc, argv, err, sizeof err);
    if (tc->err) {
        if (rc != -1)
            fail_msg("%s: succeeded, want error '%s'", tc->name, tc->err);
        if (strcmp(err, tc->err) != 0)
            fail_msg("%s: error '%s', want '%s'", tc->name, err, tc->err);
        config_free(&c);
        return;
    }
    if (rc != 0)
        fail_msg("%s: error '%s'", tc->name, err);
    if (c.command != tc->command)
        fail_msg("%s: command %d, want %d", tc->name, c.command, tc->command);
    if (tc->database_url && (!c.database_url || strcmp(c.database_url, tc->database_url) != 0))
        fail_msg("%s: database_url '%s', want '%s'", tc->name,
                 c.database_url ? c.database_url : "(null)", tc->database_url);
    if (tc->listen_host && strcmp(c.listen_host, tc->listen_host) != 0)
        fail_msg("%s: listen_host '%s', want '%s'", tc->name, c.listen_host, tc->listen_host);
    if (tc->listen_port && c.listen_port != tc->listen_port)
        fail_msg("%s: listen_port %u, want %u", tc->name, c.listen_port, tc->listen_port);
    if (tc->threads && c.threads != tc->threads)
        fail_msg("%s: threads %u, want %u", tc->name, c.threads, tc->threads);
    if (tc->body_limit && c.body_limit != tc->body_limit)
        fail_msg("%s: body_limit %u, want %u", tc->name, c.body_limit, tc->body_limit);
    if (c.no_migrate != tc->no_migrate)
        fail_msg("%s: no_migrate %d, want %d", tc->name, c.no_migrate, tc->no_migrate);
    if (tc->key_role && (!c.key_role || strcmp(c.key_role, tc->key_role) != 0))
        fail_msg("%s: key_role '%s', want '%s'", tc->name, c.key_role ? c.key_role : "(null)",
                 tc->key_role);
    config_free(&c);
}

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof config_cases / sizeof *config_cases; i++)
        run_case(&config_cases[i]);
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"werklabd", "serve", DBURL, NULL};
    struct config c;
    char err[256] = "";
    assert_int_equal(config_load(&c, 3, argv, err, sizeof err), 0);
    assert_string_equal(c.database_url, "postgres:///werklab");
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.threads, 4);
    assert_non_null(c.cors_origins);
    assert_string_equal(c.cors_origins, "");
    assert_int_equal(c.body_limit, 1048576);
    assert_int_equal(c.statement_timeout_ms, 5000);
    assert_int_equal(c.key_cache_ms, 1000);
    assert_int_equal(c.connection_timeout_s, 30);
    assert_int_equal(c.idle_timeout_s, 5);
    assert_int_equal(c.connection_limit, 1000);
    assert_int_equal(c.per_ip_connection_limit, 512);
    assert_int_equal(c.connection_memory_limit, 32768);
    assert_int_equal(c.retain_inquiries_days, 365);
    assert_int_equal(c.retain_participants_days, 730);
    assert_int_equal(c.retain_audit_days, 730);
    assert_false(c.no_migrate);
    assert_null(c.key_role);
    assert_null(c.key_name);
    assert_null(c.key_expires_at);
    assert_null(c.key_municipalities);
    config_free(&c);
    assert_null(c.database_url);
}

/* Every setting from the environment at once, then every one by flag over it. */
static void test_all_settings(void **state)
{
    (void)state;
    static const struct {
        const char *env, *env_value;
        char *flag;
        size_t offset;
        unsigned from_env, from_flag;
    } settings[] = {
        {"WERKLAB_THREADS", "16", "--threads=17", offsetof(struct config, threads), 16, 17},
        {"WERKLAB_BODY_LIMIT", "2048", "--body-limit=4096", offsetof(struct config, body_limit),
         2048, 4096},
        {"WERKLAB_STATEMENT_TIMEOUT_MS", "250", "--statement-timeout-ms=300",
         offsetof(struct config, statement_timeout_ms), 250, 300},
        {"WERKLAB_KEY_CACHE_MS", "0", "--key-cache-ms=60000", offsetof(struct config, key_cache_ms),
         0, 60000},
        {"WERKLAB_CONNECTION_TIMEOUT", "5", "--connection-timeout=3600",
         offsetof(struct config, connection_timeout_s), 5, 3600},
        {"WERKLAB_IDLE_TIMEOUT", "1", "--idle-timeout=3600",
         offsetof(struct config, idle_timeout_s), 1, 3600},
        {"WERKLAB_CONNECTION_LIMIT", "10", "--connection-limit=11",
         offsetof(struct config, connection_limit), 10, 11},
        {"WERKLAB_PER_IP_CONNECTION_LIMIT", "2", "--per-ip-connection-limit=3",
         offsetof(struct config, per_ip_connection_limit), 2, 3},
        {"WERKLAB_CONNECTION_MEMORY_LIMIT", "32768", "--connection-memory-limit=16777216",
         offsetof(struct config, connection_memory_limit), 32768, 16777216},
        {"WERKLAB_RETAIN_INQUIRIES_DAYS", "30", "--retain-inquiries-days=36500",
         offsetof(struct config, retain_inquiries_days), 30, 36500},
        {"WERKLAB_RETAIN_PARTICIPANTS_DAYS", "31", "--retain-participants-days=32",
         offsetof(struct config, retain_participants_days), 31, 32},
        {"WERKLAB_RETAIN_AUDIT_DAYS", "180", "--retain-audit-days=3650",
         offsetof(struct config, retain_audit_days), 180, 3650},
    };
    size_t n = sizeof settings / sizeof *settings;
    char *argv[2 + sizeof settings / sizeof *settings + 1] = {"werklabd", "serve"};
    assert_int_equal(setenv("WERKLAB_DATABASE_URL", "postgres://env", 1), 0);
    assert_int_equal(setenv("WERKLAB_CORS_ORIGINS", "https://a.example", 1), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(setenv(settings[i].env, settings[i].env_value, 1), 0);

    struct config c;
    char err[256] = "";
    if (config_load(&c, 2, argv, err, sizeof err) != 0)
        fail_msg("from the environment: %s", err);
    for (size_t i = 0; i < n; i++) {
        unsigned got = *(const unsigned *)(const void *)((const char *)&c + settings[i].offset);
        if (got != settings[i].from_env)
            fail_msg("%s: %u, want %u", settings[i].env, got, settings[i].from_env);
    }
    assert_string_equal(c.cors_origins, "https://a.example");
    config_free(&c);

    for (size_t i = 0; i < n; i++)
        argv[2 + i] = settings[i].flag;
    argv[2 + n] = NULL;
    if (config_load(&c, (int)(2 + n), argv, err, sizeof err) != 0)
        fail_msg("from flags: %s", err);
    for (size_t i = 0; i < n; i++) {
        unsigned got = *(const unsigned *)(const void *)((const char *)&c + settings[i].offset);
        if (got != settings[i].from_flag)
            fail_msg("%s: %u, want %u", settings[i].flag, got, settings[i].from_flag);
    }
    config_free(&c);
}

/* The table serve uses, parsed from the variable or the flag over it; none by default. */
static void test_trusted_proxies(void **state)
{
    (void)state;
    struct sockaddr_in peer = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, "10.2.3.4", &peer.sin_addr), 1);
    const struct sockaddr *sa = (const struct sockaddr *)&peer;
    char *argv[] = {"werklabd", "serve", DBURL, "--trusted-proxies= 192.168.0.0/16 , ::1", NULL};
    struct config c;
    char err[256] = "";

    assert_int_equal(config_load(&c, 3, argv, err, sizeof err), 0);
    assert_int_equal(c.proxies.n, 0);
    assert_false(proxies_trusted(&c.proxies, sa));
    config_free(&c);

    assert_int_equal(setenv("WERKLAB_TRUSTED_PROXIES", "10.0.0.0/8", 1), 0);
    assert_int_equal(config_load(&c, 3, argv, err, sizeof err), 0);
    assert_string_equal(c.trusted_proxies, "10.0.0.0/8");
    assert_int_equal(c.proxies.n, 1);
    assert_true(proxies_trusted(&c.proxies, sa));
    config_free(&c);

    assert_int_equal(config_load(&c, 4, argv, err, sizeof err), 0);
    assert_int_equal(c.proxies.n, 2);
    assert_false(proxies_trusted(&c.proxies, sa));
    assert_int_equal(inet_pton(AF_INET, "192.168.255.1", &peer.sin_addr), 1);
    assert_true(proxies_trusted(&c.proxies, sa));
    config_free(&c);
}

static void test_cors(void **state)
{
    (void)state;
    static const struct {
        const char *list;
        const char *origin;
        bool allowed;
    } cors_cases[] = {
        {"https://a.example", "https://a.example", true},
        {"https://a.example", "https://a.example/", false},
        {"https://a.example", "https://a.exampl", false},
        {"https://a.example", "https://a.example.evil", false},
        {"https://a.example", "http://a.example", false},
        {"https://a.example", "https://A.example", false},
        {"https://a.example", "", false},
        {"https://a.example", " https://a.example", false},
        {"https://a.example, https://b.example:8443 ,http://c", "https://a.example", true},
        {"https://a.example, https://b.example:8443 ,http://c", "https://b.example:8443", true},
        {"https://a.example, https://b.example:8443 ,http://c", "http://c", true},
        {"https://a.example, https://b.example:8443 ,http://c", "https://b.example", false},
        {"https://a.example, https://b.example:8443 ,http://c", "http://c ", false},
        {"https://a.example, https://b.example:8443 ,http://c", "https://a.example,", false},
        {"  https://a.example  ,  https://b.example  ", "https://b.example", true},
        {"https://a.example,", "https://a.example", true},
        {",https://a.example", "https://a.example", true},
        {"https://a.example,https://b.example", "https://a.example,https://b.example", false},
        {"", "", false},
        {",", "", false},
        {" , ", "", false},
        {"", "https://a.example", false},
        {"*", "https://a.example", false}, /* no wildcard */
        {"null", "null", true},            /* listed literally, as written */
    };
    for (size_t i = 0; i < sizeof cors_cases / sizeof *cors_cases; i++) {
        char flag[256];
        snprintf(flag, sizeof flag, "--cors-origins=%s", cors_cases[i].list);
        char *argv[] = {"werklabd", "serve", DBURL, flag, NULL};
        struct config c;
        char err[256] = "";
        if (config_load(&c, 4, argv, err, sizeof err) != 0)
            fail_msg("'%s': %s", cors_cases[i].list, err);
        if (config_cors_allowed(&c, cors_cases[i].origin) != cors_cases[i].allowed)
            fail_msg("list '%s', origin '%s': want %s", cors_cases[i].list, cors_cases[i].origin,
                     cors_cases[i].allowed ? "allowed" : "refused");
        assert_false(config_cors_allowed(&c, NULL));
        config_free(&c);
    }
    struct config none = {0}; /* not loaded: no list at all */
    assert_false(config_cors_allowed(&none, "https://a.example"));
}

static void test_usage(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    config_usage(f);
    long size = ftell(f);
    assert_true(size > 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    rewind(f);
    assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    static const char *const want[] = {
        "usage: werklabd COMMAND [OPTIONS]",
        "serve",
        "migrate",
        "create-key",
        "routes",
        "--database-url",
        "WERKLAB_DATABASE_URL",
        "--listen",
        "WERKLAB_LISTEN, default 127.0.0.1:8080",
        "WERKLAB_THREADS, default 4",
        "WERKLAB_CORS_ORIGINS, default none",
        "--no-migrate",
        "--connection-memory-limit",
        "--municipalities",
        "--trusted-proxies",
        "WERKLAB_TRUSTED_PROXIES, default none",
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(text, want[i]))
            fail_msg("usage lacks '%s'", want[i]);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cases, clear_setup),
        cmocka_unit_test_setup(test_defaults, clear_setup),
        cmocka_unit_test_setup(test_all_settings, clear_setup),
        cmocka_unit_test_setup(test_trusted_proxies, clear_setup),
        cmocka_unit_test_setup(test_cors, clear_setup),
        cmocka_unit_test_setup(test_usage, clear_setup),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
