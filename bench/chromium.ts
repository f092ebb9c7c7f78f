/**
 * How Debian's chromium runs for the dashboard's tests, screenshots and bench: headless, without
 * a sandbox (containers have none to give), and fetching nothing from the network on its own.
 * No browser is ever downloaded: playwright-core drives the one the machine has.
 */
export const chromiumOptions = {
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
  ],
}
