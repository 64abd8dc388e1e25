// The JVM starts a child that writes more than a pipe holds to its stdout, and waits for it to
// exit without reading that output: the child waits for the JVM to read, the JVM for the child.
public class WaitForChild {
    public static void main(String[] args) throws Exception {
        Process p = new ProcessBuilder("sh", "-c", "head -c 1048576 /dev/zero").start();
        System.out.println(ProcessHandle.current().pid());
        System.out.flush();
        System.out.println("exit " + p.waitFor());
    }
}
