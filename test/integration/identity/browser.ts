// The tests play the user in the device flow with the same code `hoop login --dev-user` uses
// (src/identity/dev-browser.ts): open the verification URL, pick the demo user, allow or deny.
export {completeDevLogin as completeDeviceLogin} from '../../../src/identity/dev-browser.js'
