// A correct program caught mid-wait: main waits on a monitor that a thread now sleeping will
// notify when it wakes. From one look nobody can tell it from a stall: the sleeper may be the
// notifier.
public class WaitForSleeper {
    static final Object loaded = new Object();
    static boolean ready = false;

    public static void main(String[] args) throws Exception {
        new Thread(() -> {
            try { Thread.sleep(600_000); } catch (InterruptedException e) { return; }
            synchronized (loaded) { ready = true; loaded.notifyAll(); }
        }, "slow-loader").start();
        System.out.println(ProcessHandle.current().pid());
        System.out.flush();
        synchronized (loaded) { while (!ready) loaded.wait(); }
        System.out.println("loaded");
    }
}
