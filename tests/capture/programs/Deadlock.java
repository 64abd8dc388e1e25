// Two threads take two monitors in opposite orders: a JVM monitor deadlock.
public class Deadlock {
    static final Object ledger = new Object();
    static final Object audit = new Object();

    static void both(Object first, Object second, java.util.concurrent.CountDownLatch ready) {
        synchronized (first) {
            ready.countDown();
            try { ready.await(); } catch (InterruptedException e) { return; }
            synchronized (second) { System.out.println("unreachable"); }
        }
    }

    public static void main(String[] args) throws Exception {
        java.util.concurrent.CountDownLatch ready = new java.util.concurrent.CountDownLatch(2);
        Thread a = new Thread(() -> both(ledger, audit, ready), "posting");
        Thread b = new Thread(() -> both(audit, ledger, ready), "auditing");
        a.start();
        b.start();
        System.out.println(ProcessHandle.current().pid());
        System.out.flush();
        a.join();
    }
}
