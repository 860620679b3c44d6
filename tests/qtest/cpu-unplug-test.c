/*
 * QTest testcase for CPU hot-unplug requests that the guest refuses or
 * does not answer: DEVICE_UNPLUG_GUEST_ERROR, the cpu-unplug-timeout
 * machine property (off by default) and the unplug-pending member of
 * query-hotpluggable-cpus.  No guest runs: the test moves the virtual
 * clock and plays the guest's part on the ACPI CPU hotplug registers.
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"

#define SEC (1000 * 1000 * 1000LL)
#define TIMEOUT 5                   /* cpu-unplug-timeout of the tests */

/* ACPI CPU hotplug register block (hw/acpi/cpu.c) */
#define CPUHP_SELECTOR      0x0
#define CPUHP_FLAGS         0x4
#define CPUHP_CMD           0x5
#define CPUHP_DATA          0x8
#define CPUHP_FLAG_ENABLED  0x1
#define CPUHP_FLAG_INSERT   0x2
#define CPUHP_FLAG_EJECT    0x8
#define CPUHP_CMD_OST_EVENT 0x1
#define CPUHP_CMD_OST_STATUS 0x2

typedef struct UnplugTest {
    const char *machine;    /* -machine, then -smp 1,maxcpus=2 */
    const char *extra;
    const char *driver;
    bool io;                /* the register block is in I/O space */
    uint64_t regs;          /* its base */
} UnplugTest;

static void reg_write(QTestState *qts, const UnplugTest *t, int reg,
                      uint32_t val, int size)
{
    if (t->io && size == 1) {
        qtest_outb(qts, t->regs + reg, val);
    } else if (t->io) {
        qtest_outl(qts, t->regs + reg, val);
    } else if (size == 1) {
        qtest_writeb(qts, t->regs + reg, val);
    } else {
        qtest_writel(qts, t->regs + reg, val);
    }
}

/* Flags of possible CPU 1 */
static uint8_t cpu1_flags(QTestState *qts, const UnplugTest *t)
{
    reg_write(qts, t, CPUHP_SELECTOR, 1, 4);
    return t->io ? qtest_inb(qts, t->regs + CPUHP_FLAGS) :
                   qtest_readb(qts, t->regs + CPUHP_FLAGS);
}

static void cpu1_set_flag(QTestState *qts, const UnplugTest *t, uint8_t flag)
{
    reg_write(qts, t, CPUHP_SELECTOR, 1, 4);
    reg_write(qts, t, CPUHP_FLAGS, flag, 1);
}

/* What the guest's _OST method does for CPU 1 */
static void cpu1_ost(QTestState *qts, const UnplugTest *t, uint32_t event,
                     uint32_t status)
{
    reg_write(qts, t, CPUHP_SELECTOR, 1, 4);
    reg_write(qts, t, CPUHP_CMD, CPUHP_CMD_OST_EVENT, 1);
    reg_write(qts, t, CPUHP_DATA, event, 4);
    reg_write(qts, t, CPUHP_CMD, CPUHP_CMD_OST_STATUS, 1);
    reg_write(qts, t, CPUHP_DATA, status, 4);
}

/* The query-hotpluggable-cpus entry of possible CPU 1 (of 2) */
static QDict *slot1(QTestState *qts)
{
    QDict *resp = qtest_qmp(qts, "{'execute': 'query-hotpluggable-cpus'}");
    QList *slots = qdict_get_qlist(resp, "return");
    QDict *entry;

    /* the list is in reverse order of the possible CPUs */
    g_assert_cmpint(qlist_size(slots), ==, 2);
    entry = qobject_to(QDict, qlist_peek(slots));
    qobject_ref(entry);
    qobject_unref(resp);
    return entry;
}

static bool cpu1_plugged(QTestState *qts)
{
    QDict *s = slot1(qts);
    bool plugged = qdict_haskey(s, "qom-path");

    if (plugged) {
        g_assert_cmpstr(qdict_get_str(s, "qom-path"), ==,
                        "/machine/peripheral/c1");
    }
    qobject_unref(s);
    return plugged;
}

static bool unplug_pending(QTestState *qts)
{
    QDict *s = slot1(qts);
    bool pending;

    g_assert_cmpstr(qdict_get_try_str(s, "qom-path"), ==,
                    "/machine/peripheral/c1");
    g_assert(qdict_haskey(s, "unplug-pending"));
    pending = qdict_get_bool(s, "unplug-pending");
    qobject_unref(s);
    return pending;
}

/* Start @t's machine with this cpu-unplug-timeout (-1: not set) and c1 */
static QTestState *start_timeout(const UnplugTest *t, int timeout)
{
    g_autofree char *opt = timeout < 0 ? g_strdup("") :
        g_strdup_printf(",cpu-unplug-timeout=%d", timeout);
    QTestState *qts;
    QDict *s, *props;

    qts = qtest_initf("-machine %s%s -smp 1,maxcpus=2 -nodefaults %s",
                      t->machine, opt, t->extra);
    if (t->io) {
        /* what the DSDT's _INI does: leave legacy CPU hotplug mode */
        qtest_outb(qts, t->regs, 0);
    }
    s = slot1(qts);
    props = qdict_clone_shallow(qdict_get_qdict(s, "props"));
    qobject_unref(s);
    qdict_put_str(props, "id", "c1");
    qtest_qmp_device_add_qdict(qts, t->driver, props);
    qobject_unref(props);
    g_assert_false(unplug_pending(qts));
    return qts;
}

static QTestState *start(const UnplugTest *t)
{
    return start_timeout(t, TIMEOUT);
}

/* device_del that qdev refuses because a request is pending */
static void device_del_refused(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'device_del',"
                           " 'arguments': {'id': 'c1'}}");
    QDict *err = qdict_get_qdict(rsp, "error");

    g_assert(err);
    g_assert_cmpstr(qdict_get_str(err, "desc"), ==,
                    "Device c1 is already in the process of unplug");
    qobject_unref(rsp);
}

static void expect_guest_error(QTestState *qts)
{
    QDict *resp = qtest_qmp_eventwait_ref(qts, "DEVICE_UNPLUG_GUEST_ERROR");
    QDict *data = qdict_get_qdict(resp, "data");

    g_assert_cmpstr(qdict_get_str(data, "device"), ==, "c1");
    g_assert_cmpstr(qdict_get_str(data, "path"), ==,
                    "/machine/peripheral/c1");
    qobject_unref(resp);
    g_assert_false(unplug_pending(qts));
}

/*
 * Nobody ejects and a timeout is set: another device_del is refused until
 * the deadline, then the request times out.
 */
static void test_timeout(const void *data)
{
    QTestState *qts = start(data);

    qtest_qmp_device_del_send(qts, "c1");
    g_assert_true(unplug_pending(qts));
    qtest_clock_step(qts, (TIMEOUT - 1) * SEC);
    g_assert_true(unplug_pending(qts));
    device_del_refused(qts);
    qtest_clock_step(qts, 1 * SEC);
    expect_guest_error(qts);

    /* and a new request can be made */
    qtest_qmp_device_del_send(qts, "c1");
    g_assert_true(unplug_pending(qts));
    qtest_quit(qts);
}

/* The guest answers the eject request with _OST "not supported" */
static void test_refused(const void *data)
{
    const UnplugTest *t = data;
    QTestState *qts = start(t);

    qtest_qmp_device_del_send(qts, "c1");
    cpu1_ost(qts, t, 0x3, 0x84);            /* eject request: in progress */
    g_assert_true(unplug_pending(qts));
    cpu1_ost(qts, t, 0x3, 0x80);            /* eject request: not supported */
    expect_guest_error(qts);
    g_assert(cpu1_flags(qts, t) & CPUHP_FLAG_ENABLED);

    /* device_del again, and this time the guest ejects */
    qtest_qmp_device_del_send(qts, "c1");
    cpu1_set_flag(qts, t, CPUHP_FLAG_EJECT);
    cpu1_ost(qts, t, 0x3, 0x0);
    qtest_qmp_eventwait(qts, "DEVICE_DELETED");
    g_assert_false(cpu1_plugged(qts));
    qtest_quit(qts);
}

/*
 * The guest ejects, then reads _STA and reports the eject through _OST.
 * Until that _OST the CPU reads as gone but keeps its slot: no
 * DEVICE_DELETED, a device_add into the slot is refused, and the _OST is
 * reported for the CPU it is about.  Then the slot takes a new CPU.
 */
static void test_replug_after_eject(const void *data)
{
    const UnplugTest *t = data;
    QTestState *qts = start_timeout(t, -1);
    QDict *s = slot1(qts), *props, *rsp, *ev;

    props = qdict_clone_shallow(qdict_get_qdict(s, "props"));
    qobject_unref(s);
    qdict_put_str(props, "driver", t->driver);
    qdict_put_str(props, "id", "c2");

    qtest_qmp_device_del_send(qts, "c1");
    cpu1_set_flag(qts, t, CPUHP_FLAG_EJECT);
    g_assert_false(cpu1_flags(qts, t) & CPUHP_FLAG_ENABLED);   /* _STA */
    g_assert_true(cpu1_plugged(qts));
    qobject_ref(props);
    rsp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': %p}",
                    props);
    g_assert(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);

    cpu1_ost(qts, t, 0x3, 0x0);
    ev = qtest_qmp_eventwait_ref(qts, "ACPI_DEVICE_OST");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(qdict_get_qdict(ev,
                    "data"), "info"), "device"), ==, "c1");
    qobject_unref(ev);
    qtest_qmp_eventwait(qts, "DEVICE_DELETED");
    g_assert_false(cpu1_plugged(qts));

    rsp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': %p}",
                    props);
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    g_assert(cpu1_flags(qts, t) & CPUHP_FLAG_ENABLED);
    qtest_quit(qts);
}

/*
 * The default: no timeout.  A request stays pending however long the
 * guest takes, device_del sends it again, and an eject the guest does on
 * its own is carried out as in stock QEMU.
 */
static void test_no_timeout(const void *data)
{
    const UnplugTest *t = data;
    QTestState *qts = start_timeout(t, -1);
    QDict *rsp;

    rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments':"
                    " {'path': '/machine', 'property': 'cpu-unplug-timeout'}}");
    g_assert_cmpint(qdict_get_int(rsp, "return"), ==, 0);
    qobject_unref(rsp);

    qtest_qmp_device_del_send(qts, "c1");
    qtest_clock_step(qts, 3600 * SEC);
    g_assert_true(unplug_pending(qts));
    qtest_qmp_device_del_send(qts, "c1");           /* re-sent, no error */
    g_assert_true(unplug_pending(qts));
    qtest_quit(qts);

    /*
     * An eject nobody asked for removes the CPU; a guest that sends no
     * _OST after it gets it completed after 2 s.
     */
    qts = start_timeout(t, -1);
    cpu1_set_flag(qts, t, CPUHP_FLAG_EJECT);
    qtest_clock_step(qts, 1 * SEC);
    g_assert_true(cpu1_plugged(qts));
    qtest_clock_step(qts, 1 * SEC);
    qtest_qmp_eventwait(qts, "DEVICE_DELETED");
    g_assert_false(cpu1_plugged(qts));
    qtest_quit(qts);
}

/*
 * With a timeout set, an eject without a pending request (or after a
 * timeout) keeps the CPU.
 */
static void test_unrequested_eject(const void *data)
{
    const UnplugTest *t = data;
    QTestState *qts = start(t);
    uint8_t flags;

    cpu1_set_flag(qts, t, CPUHP_FLAG_INSERT);       /* clear the event */
    g_assert_false(cpu1_flags(qts, t) & CPUHP_FLAG_INSERT);
    cpu1_set_flag(qts, t, CPUHP_FLAG_EJECT);
    flags = cpu1_flags(qts, t);
    g_assert(flags & CPUHP_FLAG_ENABLED);
    g_assert(flags & CPUHP_FLAG_INSERT);    /* Device Check for the guest */
    g_assert_true(cpu1_plugged(qts));
    g_assert_false(unplug_pending(qts));

    /* the same after a request timed out */
    qtest_qmp_device_del_send(qts, "c1");
    qtest_clock_step(qts, (TIMEOUT + 1) * SEC);
    expect_guest_error(qts);
    cpu1_set_flag(qts, t, CPUHP_FLAG_EJECT);
    g_assert(cpu1_flags(qts, t) & CPUHP_FLAG_ENABLED);
    g_assert_true(cpu1_plugged(qts));
    g_assert_false(unplug_pending(qts));
    qtest_quit(qts);
}

static void add(const char *machine, const UnplugTest *t)
{
    static const struct {
        const char *name;
        void (*fn)(const void *);
    } tests[] = {
        { "timeout", test_timeout },
        { "no-timeout", test_no_timeout },
        { "replug-after-eject", test_replug_after_eject },
        { "refused", test_refused },
        { "unrequested-eject", test_unrequested_eject },
    };

    if (!qtest_has_machine(machine)) {
        return;
    }
    for (int i = 0; i < ARRAY_SIZE(tests); i++) {
        g_autofree char *path = g_strdup_printf("cpu-unplug/%s/%s", machine,
                                                tests[i].name);

        qtest_add_data_func(path, t, tests[i].fn);
    }
}

static void skip_no_firmware(const void *data)
{
    g_test_skip("no aarch64 UEFI firmware: set QTEST_AARCH64_BIOS");
}

int main(int argc, char **argv)
{
    const char *arch = qtest_get_arch();
    const char *bios = g_getenv("QTEST_AARCH64_BIOS");
    static UnplugTest pc = {
        "pc", "", "qemu64-x86_64-cpu", true, 0xaf00,
    };
    static UnplugTest q35 = {
        "q35", "", "qemu64-x86_64-cpu", true, 0x0cd8,
    };
    static UnplugTest microvm = {
        "microvm,acpi=on", "", "qemu64-x86_64-cpu", false, 0xfea00300,
    };
    static UnplugTest virt = {
        "virt,gic-version=3", NULL, "max-arm-cpu", false, 0x090c0000,
    };
    g_autofree char *virt_extra = NULL;

    g_test_init(&argc, &argv, NULL);

    if (g_str_equal(arch, "x86_64")) {
        add("pc", &pc);
        add("q35", &q35);
        add("microvm", &microvm);
    } else if (g_str_equal(arch, "aarch64")) {
        /* virt only creates its GED (ACPI) when it loads firmware */
        if (!bios) {
            bios = "pc-bios/edk2-aarch64-code.fd";
        }
        if (!g_file_test(bios, G_FILE_TEST_EXISTS)) {
            qtest_add_data_func("cpu-unplug/virt/firmware", NULL,
                                skip_no_firmware);
        } else {
            virt_extra = g_strdup_printf("-cpu max -bios %s", bios);
            virt.extra = virt_extra;
            add("virt", &virt);
        }
    }
    return g_test_run();
}
