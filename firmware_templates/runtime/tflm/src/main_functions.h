// setup() and loop(), as in TFLM's examples: Arduino calls them itself; other boards' platform.cc does.
#ifndef EDGECLUST_MAIN_FUNCTIONS_H_
#define EDGECLUST_MAIN_FUNCTIONS_H_

// Firmware status after setup(): 0 self-test passed, 1 self-test failed, 2 the model could not be set up,
// 3 an inference failed. (4 is a HardFault, reported by the startup code.) The QEMU boards exit with it.
enum FirmwareStatus { kStatusPass = 0, kStatusFail = 1, kStatusSetupFailed = 2, kStatusInvokeFailed = 3 };

void setup();
void loop();
int self_test_status();

#endif  // EDGECLUST_MAIN_FUNCTIONS_H_
